"""The register of rights requests (P1): due dates, extensions, outcomes, the access log."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from datetime import date, timedelta

from application.card_base import iso
from application.privacy_reads import PiiReader, named_in_store
from application.privacy_scan import Json, Service
from domain.deadlines import check_extension, due_date, is_overdue
from domain.errors import refuse

CONTROLLER_MARKET = "FR"  # the controller is in Paris: French public holidays set P1 deadlines
REQUEST_TYPES = ("access", "erasure", "portability", "objection", "rectification", "restriction")


class RequestRegister:
    """The register of rights requests (P1), and what every right records of its request."""

    def __init__(self, service: Service) -> None:
        self.service, self.app = service, service.app
        self.records = service.privacy_records
        self.calendar = service.app.markets.get(CONTROLLER_MARKET)
        self.records.create()

    def today(self) -> date:
        return self.calendar.local_date(self.app.now())

    # --- access log (R21) -------------------------------------------------------------

    def access_log(self, subject_id: str, reader: PiiReader) -> Json:
        reader.note(subject_id, "access_log")
        reader.flush()
        stored = named_in_store(self.service, [subject_id])[subject_id] or subject_id
        entries = [
            {k: v for k, v in row.items() if k != "subject_id"}
            for row in self._access_log_rows(list(dict.fromkeys([subject_id, stored])))
        ]
        return {"subject_id": subject_id, "entries": entries}

    # --- request register (P1) --------------------------------------------------------

    def open_request(
        self, subject_id: str, kind: str, received_on: date, request_id: str | None
    ) -> Json:
        if kind not in REQUEST_TYPES:
            raise refuse("invalid_input", f"request type must be one of {', '.join(REQUEST_TYPES)}")
        if received_on > self.today():
            raise refuse("invalid_date", "a request cannot be received in the future")
        request_id = request_id or f"req-{uuid.uuid4()}"
        existing = self.records.request(request_id)
        if existing is not None:
            same = (existing["subject_id"], existing["type"], existing["received_on"])
            if same != (subject_id, kind, received_on.isoformat()):
                raise refuse("request_id_conflict", "this request id is already another request")
            return {**self._present(existing), "replayed": True}
        due = due_date(received_on, calendar=self.calendar)
        self.records.add_request({
            "request_id": request_id, "subject_id": subject_id, "type": kind,
            "received_on": received_on.isoformat(), "due_on": due.isoformat(),
            "extension_months": 0, "extension_reason": None, "status": "open",
            "opened_at": iso(self.app.now()), "closed_on": None,
        })
        return {**self.request(request_id), "replayed": False}

    def extend(self, request_id: str, months: int, reason: str) -> Json:
        """Art. 12(3): decided, with its reason, within the first month, while still open."""
        row = self.request(request_id)
        if row["status"] != "open":
            raise refuse("request_closed", "a closed request cannot be extended")
        if not reason.strip():
            raise refuse("invalid_input", "an extension needs a reason")
        received = date.fromisoformat(row["received_on"])
        if self.today() > due_date(received, calendar=self.calendar):
            raise refuse("extension_too_late", "an extension is decided within the first month")
        total = check_extension(row["extension_months"], months)
        due = due_date(received, calendar=self.calendar, extension_months=total)
        self.records.extend_request(request_id, total, reason, due.isoformat())
        return self.request(request_id)

    def close(self, request_id: str, outcome: str, reader: PiiReader) -> Json:
        """The answer was sent: who closed the request and what the outcome was are recorded
        (accountability); closing again keeps the first outcome."""
        if not outcome.strip():
            raise refuse("invalid_input", "closing a request records its outcome")
        row = self.request(request_id)
        if row["status"] == "open":
            self._reference(request_id, row["subject_id"])  # its outcome row
            reader.note(row["subject_id"], "request")
            reader.flush()
            self._close_with(request_id, reader.operator,
                             {"request_id": request_id, "operator": reader.operator,
                              "outcome": outcome})
        return {**self.request(request_id), **self._outcome(request_id)}

    def _outcome(self, request_id: str) -> Json:
        found = self.records.outcome(request_id)
        if found is None:
            return {"closed_by": None, "outcome": None}
        operator, outcome, closed_at = found
        return {"closed_by": operator, "outcome": json.loads(outcome).get("outcome", "done"),
                "closed_at": closed_at}

    def request(self, request_id: str) -> Json:
        row = self.records.request(request_id)
        if row is None:
            raise refuse("unknown_request", f"no request with id {request_id[:40]!r}")
        return self._present(row)

    def requests_of(self, subject_id: str) -> list[Json]:
        return [self._present(r) for r in self.records.requests_of(subject_id)]

    def list_requests(
        self, *, overdue: bool, as_of: date | None, due_within: int | None = None
    ) -> Json:
        """All requests; or the open ones past their due date; or the warning list: the open
        ones due within `due_within` days (late ones included, flagged `overdue`)."""
        day = as_of or self.today()
        if overdue:
            rows = self.records.open_requests_due(before=day.isoformat())
        elif due_within is not None:
            rows = self.records.open_requests_due(
                by=(day + timedelta(days=due_within)).isoformat())
        else:
            rows = self.records.all_requests()
        return {"as_of": day.isoformat(), "requests": [self._present(r, day) for r in rows]}

    def due_counts(self, within_days: int) -> Json:
        """What /metrics shows of the register: no subject, only how many requests are late
        and how many are due within `within_days` days (late ones included)."""
        day = self.today()
        late, due = self.records.due_counts(
            late_before=day.isoformat(),
            due_by=(day + timedelta(days=within_days)).isoformat())
        return {"overdue": late, "due_within": due}

    def _present(self, row: Json, as_of: date | None = None) -> Json:
        day = as_of or self.today()
        due = date.fromisoformat(row["due_on"])
        return {**row, "overdue": is_overdue(due, day, closed=row["status"] != "open")}

    def _forget_rectifications(self, subjects: list[str]) -> None:
        for subject in subjects:
            self.records.forget_subject(subject)

    def _check_request(self, request_id: str, subjects: list[str], kind: str) -> Json | None:
        """The request must be in the register, of this kind and of one of these subjects;
        a request already acted on returns its recorded outcome."""
        row = self.records.request(request_id)
        if row is None:
            raise refuse("unknown_request", "register the request first (gdpr request open)")
        # The register names the subject as the operator did; the ids may be their store id.
        named = named_in_store(self.service, [row["subject_id"]])
        if not {row["subject_id"], *named.values()} & set(subjects) or row["type"] != kind:
            raise refuse(
                "request_mismatch",
                f"request {request_id[:40]} is a {row['type']} request of another subject",
            )
        done = self.records.outcome(request_id)
        return dict(json.loads(done[1])) if done else None

    def _reference(self, request_id: str, subject_id: str) -> str:
        """What the subject's stream records: stable for the request (a retry records nothing
        twice) but different per subject, so two erasures of one request are not linkable
        on the published stream (P5)."""
        salt = self.records.salt(request_id, secrets.token_hex(16))
        digest = hashlib.sha256(f"{salt}\x00{request_id}\x00{subject_id}".encode())
        return f"ref-{digest.hexdigest()[:32]}"

    def _close_with(self, request_id: str, operator: str, outcome: Json) -> None:
        self.records.close_request(request_id, operator, json.dumps(outcome),
                                   iso(self.app.now()), self.today().isoformat())

    def _access_log_rows(self, subjects: list[str]) -> list[Json]:
        # A listing of the views (`fraud alerts`) logs the pseudonym it showed: theirs too.
        published = {self.service.pseudonyms.subject(s): s for s in subjects}
        rows = self.records.access_log([*subjects, *published])
        return [{**row, "subject_id": published.get(row["subject_id"], row["subject_id"])}
                for row in rows]

