"""The tag scheme, chosen around how lerobot 0.4.4 resolves a dataset's Hub revision.

lerobot asks for the *codebase* version (``CODEBASE_VERSION`` = ``v3.0``) unless told otherwise, and every ref that
``packaging.version.parse`` accepts (``v3.0``, ``1.2``, ``v2``, ``2024.11``...) is taken for a codebase version by
``get_safe_version``. So a dataset version needs a tag packaging rejects, or lerobot would pick it as if it were a
codebase version. Our tags are ``ds-NNNN-<content id>``:

* ``ds-`` starts with a letter other than ``v``: never a PEP 440 version (a test checks it with lerobot's own
  ``is_valid_version``);
* ``NNNN`` is the version's sequence number in its repo (1, 2, ...): sorts and reads in publish order;
* the content id (12 hex digits of the sha256 over the dataset's files) names the content: two tags with the
  same id hold the same data.

The codebase tag ``v3.0`` is moved to the newest version at every publish, so a plain ``LeRobotDataset(repo_id)``
gets the newest data, while ``revision=ds-...`` keeps naming one exact, immutable version.
"""

from __future__ import annotations

import re

CODEBASE_TAG = "v3.0"
"""lerobot 0.4.4's ``CODEBASE_VERSION``, the ref a plain ``LeRobotDataset(repo_id)`` resolves (checked in a test,
so this module needs no lerobot import)."""

CONTENT_ID_LENGTH = 12
_TAG = re.compile(r"^ds-(\d{4,})-([0-9a-f]{%d})$" % CONTENT_ID_LENGTH)


def dataset_tag(sequence: int, content_id: str) -> str:
    return f"ds-{sequence:04d}-{content_id[:CONTENT_ID_LENGTH]}"


def is_dataset_tag(name: str) -> bool:
    return bool(_TAG.match(name))


def tag_sequence(tag: str) -> int:
    match = _TAG.match(tag)
    if not match:
        raise ValueError(f"{tag!r} is not a dataset tag (ds-NNNN-<content id>)")
    return int(match.group(1))
