"""Writing operators' decisions back into intent files, keeping their comments and order."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString


class EditError(ValueError):
    """The edit cannot be made (unknown intent, duplicate example); the message says why."""


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments, order and quoting survive
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def add_example(intents_dir: Path, intent_id: str, text: str) -> tuple[Path, bytes]:
    """Append `text` to the intent's examples; return the file and its previous bytes (to undo)."""
    text = " ".join(text.split())
    if not text:
        raise EditError("the example is empty")
    y = _yaml()
    for path in sorted(Path(intents_dir).glob("*.yaml")):
        original = path.read_bytes()
        try:
            data = y.load(original)
        except YAMLError as exc:  # the operator's own edit elsewhere: named, nothing written
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise EditError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                            f"fix it (mia intents check) and try again") from None
        for intent in (data or {}).get("intents", []) or []:
            if intent.get("id") != intent_id:
                continue
            examples = intent["examples"]
            if any(" ".join(str(e).lower().split()) == text.lower() for e in examples):
                raise EditError(f"'{text}' is already an example of {intent_id}")
            # Quoted when MIA's reader would not read it back as this text ("off" is a boolean to it).
            examples.append(text if _reads_back(text) else DoubleQuotedScalarString(text))
            _write_atomically(path, y, data)
            return path, original
    raise EditError(f"no intent '{intent_id}' in {intents_dir}")


def restore(path: Path, original: bytes) -> None:
    """Undo an edit that did not pass the gate."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(original)
    os.replace(tmp, path)


def _reads_back(text: str) -> bool:
    """True when the YAML reader of the content files reads `text`, written plain, as that text."""
    try:
        return yaml.safe_load(f"- {text}") == [text]
    except yaml.YAMLError:
        return False


def _write_atomically(path: Path, y: YAML, data) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            y.dump(data, f)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # the file keeps who may read it (mkstemp: 600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
