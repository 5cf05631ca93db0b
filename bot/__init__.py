"""MIA (Mido Intelligence Assistant): passport questions for the immigration offices of South Sumatra."""
