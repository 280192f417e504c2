"""The contact lists the lakehouse hands to the source system (the CRM that sends the retention offer).

Why files: the source is a separate system. The experiment's contacts asset exports each wave's list as a CSV
under ``<root>/outbound/contacts/`` and the source reads that folder when it writes its next landing files, the
way a real CRM picks up an export. Each file is written whole or not at all (``atomic_files``), so a killed
writer never leaves half a list, and re-exporting a wave replaces its file with the same rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from mlops_assets.atomic_files import atomic_write

CONTACTS_DIR = "contacts"
COLUMNS = ("customer_id", "experiment", "arm")


def contacts_folder(outbound_root: str | Path) -> Path:
    return Path(outbound_root) / CONTACTS_DIR


def write_contact_export(
    outbound_root: str | Path, day: date, experiment: str, rows: Iterable[tuple[str, str]]
) -> Path:
    """Export ``day``'s contacts of ``experiment`` (``(customer_id, arm)`` pairs) atomically; returns the file."""
    target = contacts_folder(outbound_root) / f"{day.isoformat()}_{experiment}.csv"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerows((customer, experiment, arm) for customer, arm in sorted(rows))
    atomic_write(target, text.getvalue().encode())
    return target


def read_contact_exports(outbound_root: str | Path) -> dict[date, list[str]]:
    """Every exported contact, by day (what the source system has been asked to contact); empty when none."""
    folder = contacts_folder(outbound_root)
    contacts: dict[date, list[str]] = {}
    if not folder.is_dir():
        return contacts
    for path in sorted(folder.glob("*.csv")):
        if path.name.startswith("."):
            continue
        day = date.fromisoformat(path.name[:10])
        with path.open(newline="") as f:
            contacts.setdefault(day, []).extend(row["customer_id"] for row in csv.DictReader(f))
    return contacts
