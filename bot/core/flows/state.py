"""Keys of the conversation data that dialogue flows keep between messages."""

FORM_KEY = "form"  # an open Lapor Rakit request form
HANDOFF_KEY = "handoff"  # a staff member has the conversation: {"office": id, "since": ts}
HANDOFF_REGION = "handoff_region"  # pending: MIA asked the region to route a handoff
COMPLAINT_REGION = "complaint_region"  # pending: MIA asked the region to route a complaint
HOME_KEY = "home"  # the citizen's regency as last understood: {"region": code, "place": name}
