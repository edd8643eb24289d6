"""``unified-messaging invoicing sample DEST``: 920000 files to try invoicing with, good or wrong on purpose.

The files are written by :mod:`.sending_writer` for the simulator's population, so that with ``serve`` on
its defaults a good one goes from OK to DONE.  This lives at the edge with the simulator; the composition
root (``cli.py``) adds it to the ``invoicing`` group.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Callable

import click

from unified_messaging.config import ConfigError, load_config
from unified_messaging.simulator.sending_writer import DEMO_SENDER_NIHII, Defect, build_sending

logger = logging.getLogger(__name__)

REFUSED_BY_INSURERS = "refused_code"

ERROR_KINDS: dict[str, str] = {
    Defect.ZONE_99.value: "wrong check digits (zone 99) on the first service line: refused by UM, nothing sent",
    Defect.CONTROL_NUMBER.value: "wrong control number (zone 98) on the first invoice: refused by UM, nothing sent",
    Defect.HEADER.value: "impossible invoicing month in segment 300: refused by UM, nothing sent",
    Defect.BLOCKING.value: "impossible date of service on the first line: refused by UM, nothing sent",
    REFUSED_BY_INSURERS: "every line with a code the insurers refuse (9999990): sent, then refused by them (920099)",
}


def _options(errors: str | None) -> dict[str, object]:
    if errors is None:
        return {}
    if errors == REFUSED_BY_INSURERS:
        return {"nomenclature": "9999990"}
    return {"defects": frozenset({Defect(errors)})}


def write_samples(dest: Path, *, count: int = 1, errors: str | None = None, is_test: bool = True,
                  with_ok: bool = True, now: Callable[[], datetime] = datetime.now,
                  sender: str = DEMO_SENDER_NIHII) -> list[tuple[Path, int]]:
    """Write ``count`` sendings into ``dest`` (each then its ``.ok`` when ``with_ok``), each with its own
    zone 204 (the sending's reference, which UM refuses to send twice) made from the time of writing, and
    ``sender`` (a NIHII) in record 10.
    Returns each file with its size: a running gateway may have taken the file already."""
    dest.mkdir(parents=True, exist_ok=True)
    moment = now()
    base = int(moment.timestamp() * 1000)  # milliseconds: two runs a second apart never share a zone 204
    written = []
    for i in range(count):
        zone_204 = f"{base + i:014d}"
        content = build_sending(zone_204=zone_204, is_test=is_test, mutualities=("131", "231"),
                                invoices_per_mutuality=2, lines_per_invoice=3,
                                invoicing_month=moment.strftime("%Y%m"), creation_date=moment.strftime("%Y%m%d"),
                                sender_nihii=sender, **_options(errors))  # type: ignore[arg-type]
        name = f"SAMPLE-{zone_204}{'-' + errors if errors else ''}.txt"
        partial = dest / f".{name}.part"
        partial.write_bytes(content)
        os.replace(partial, dest / name)
        if with_ok:
            (dest / f"{name}.ok").touch()
        written.append((dest / name, len(content)))
        logger.info("sample sending %s written (%d bytes)", name, len(content))
    return written


@click.command("sample")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--errors", type=click.Choice(sorted(ERROR_KINDS)), default=None,
              help="Make the files wrong on purpose: " + "; ".join(f"{k}: {v}" for k, v in ERROR_KINDS.items()))
@click.option("--count", type=click.IntRange(1, 1000), default=1, help="How many files (default 1).")
@click.option("--no-ok", "no_ok", is_flag=True, help="Do not write the .ok marker after each file.")
@click.option("--sender", metavar="NIHII", default=None,
              help="The sender's NIHII (11 digits) in record 10 (default: [invoicing] care_provider_nihii, else the "
                   "demo lab's).")
@click.pass_context
def sample(ctx: click.Context, dest: Path | None, errors: str | None, count: int, no_ok: bool,
           sender: str | None) -> None:
    """Write 920000 files for the simulator's population into DEST (default: the toSend folder), each
    followed by its .ok, so that the running gateway sends them at once."""
    config_path = (ctx.parent.params.get("config_path") if ctx.parent else None)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    target = dest if dest is not None else config.invoicing_root / "toSend"
    sender = sender or config.invoicing.care_provider_nihii or DEMO_SENDER_NIHII
    if len(sender) != 11 or not sender.isdigit():
        raise click.BadParameter(f"{sender!r}: give the sender's NIHII on 11 digits", param_hint="--sender")
    for path, size in write_samples(target, count=count, errors=errors, is_test=config.upstream.is_test,
                                    with_ok=not no_ok, sender=sender):
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        click.echo(f"{shown} ({size} bytes){'' if no_ok else ' and its .ok'}")
    what = ERROR_KINDS[errors] if errors else "a good sending: OK, then ONGOING, then DONE within a minute"
    click.echo(f"{count} file(s): {what}. Follow them with: unified-messaging invoicing status")
