"""The rights of data subjects (R21, P1-P5) as one object, composed of the modules by area."""

from __future__ import annotations

from application.privacy_erasure import Erasure
from application.privacy_export import Exports
from application.privacy_rights import SubjectRights


class Privacy(Erasure, SubjectRights, Exports):
    """The rights of data subjects (R21, P1-P4) as operations of customer service."""
