"""``journal check`` and ``journal repair``: integrity report and torn-tail recovery."""

from __future__ import annotations

from pathlib import Path

import msgspec

from engine import EventRecord, IntentRecord, JournalHeader

from ._reader import JournalCorrupt, JournalError, JournalReader, TornTail
from ._writer import cut_to_side_file

__all__ = ["CheckReport", "check_journal", "repair_journal"]


class CheckReport(msgspec.Struct):
    path: str
    segments: int = 0
    records: int = 0
    events: int = 0
    intent_records: int = 0
    intents: int = 0
    first_seq: int = 0
    last_seq: int = 0
    bytes: int = 0
    torn: TornTail | None = None
    corrupt: str = ""  # the JournalCorrupt message, if any
    corrupt_segment: str = ""
    corrupt_offset: int = -1

    @property
    def ok(self) -> bool:
        return not self.corrupt and self.torn is None


def check_journal(path: str | Path) -> CheckReport:
    """Read every record, checking framing, CRCs, decoding and sequence continuity."""
    path = Path(path)
    report = CheckReport(str(path))
    reader = JournalReader(path)
    report.segments = len(reader.segments)
    report.bytes = sum(p.stat().st_size for p in reader.segments)
    try:
        for rec in reader.records():
            report.records += 1
            if isinstance(rec, EventRecord):
                report.events += 1
                if not report.first_seq:
                    report.first_seq = rec.seq
                report.last_seq = rec.seq
            elif isinstance(rec, IntentRecord):
                report.intent_records += 1
                report.intents += len(rec.intents)
            elif isinstance(rec, JournalHeader) and report.records != 1:
                raise JournalCorrupt(Path(path), -1, report.last_seq, "a second header record")
    except JournalCorrupt as e:
        report.corrupt = str(e)
        report.corrupt_segment = str(e.segment)
        report.corrupt_offset = e.offset
    report.torn = reader.torn
    return report


def repair_journal(
    path: str | Path, *, cut_corruption: bool = False
) -> tuple[CheckReport, list[Path]]:
    """Truncate a torn tail (cut bytes saved beside the segment). Returns (report, side files).

    Mid-file corruption is not repaired unless ``cut_corruption``: then everything from the
    bad record on is cut (and saved), including later segments, which are renamed aside.
    """
    report = check_journal(path)
    side: list[Path] = []
    if report.torn is not None:
        side.append(cut_to_side_file(Path(report.torn.segment), report.torn.offset))
    elif report.corrupt:
        if not cut_corruption:
            raise JournalError(
                f"{report.corrupt}. This is corruption, not a torn write, so repair will not cut "
                "it on its own: rerun with --cut-corruption to truncate the journal at the bad "
                "record (everything after it is saved beside the segments)"
            )
        seg = Path(report.corrupt_segment)
        side.append(cut_to_side_file(seg, max(report.corrupt_offset, 0)))
        later = sorted(p for p in seg.parent.glob("segment-*.rmj") if p.name > seg.name)
        for p in later:
            moved = p.with_name(p.name + ".cut-all")
            p.rename(moved)
            side.append(moved)
    return report, side
