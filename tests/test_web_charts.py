"""The dashboard's SVG charts: axis labels, empty charts, legends that fit in every language, distinct colours."""
from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from unified_messaging.web.charts import Series, horizontal_bars, stacked_columns
from unified_messaging.web.views.traffic import OUTCOMES

SVG = "{http://www.w3.org/2000/svg}"
CSS = Path(__file__).resolve().parents[1] / "unified_messaging" / "web" / "static" / "mybox.css"


def parse(markup) -> etree._Element:
    return etree.fromstring(str(markup).encode())


def axis_labels(svg: etree._Element) -> list[str]:
    return [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end"]


def test_the_y_axis_writes_halves_as_they_are():
    svg = parse(stacked_columns("t", ["2026-11"], [Series("ok", "OK")], {("2026-11", "ok"): 5}))
    assert axis_labels(svg) == ["0", "2.5", "5"]
    svg = parse(stacked_columns("t", ["2026-11"], [Series("ok", "OK")], {("2026-11", "ok"): 20}))
    assert axis_labels(svg) == ["0", "10", "20"]


def test_an_empty_chart_says_no_data_in_the_callers_words():
    for svg in (parse(stacked_columns("Files", ["2026-11"], [Series("ok", "OK")], {}, empty="Geen gegevens")),
                parse(stacked_columns("Files", [], [Series("ok", "OK")], {}, empty="Geen gegevens")),
                parse(horizontal_bars("Codes", [], empty="Aucune donnée"))):
        texts = [t.text for t in svg.iter(f"{SVG}text")]
        assert len(texts) == 1 and texts[0] in ("Geen gegevens", "Aucune donnée")
        assert not list(svg.iter(f"{SVG}rect")) and not list(svg.iter(f"{SVG}line"))


def test_long_legends_wrap_and_stay_inside_the_chart():
    labels = ["931000 Ontvangstbevestiging", "920098 Aanvaard na controle", "920099 Geweigerd na controle",
              "920999 Geweigerd bij ontvangst", "920900 Afrekening van de ziekenfondsen"]
    series = [Series(f"c{i}", label) for i, label in enumerate(labels)]
    svg = parse(stacked_columns("t", ["< 1 u"], series, {("< 1 u", "c0"): 3}))
    width = float(svg.get("viewBox").split()[2])
    height = float(svg.get("viewBox").split()[3])
    legend = [t for t in svg.iter(f"{SVG}text") if t.text in labels]
    assert [t.text for t in legend] == labels
    placed = [(float(t.get("x")), float(t.get("y")), t.text) for t in legend]
    for x, y, text in placed:
        assert x + 7.2 * len(text) <= width, text
        assert y <= height
    by_line: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in placed:
        by_line.setdefault(y, []).append((x, text))
    assert len(by_line) > 1  # this legend does not fit on one line
    for items in by_line.values():
        items.sort()
        for (x1, t1), (x2, _t2) in zip(items, items[1:]):
            assert x1 + 6.5 * len(t1) < x2, (t1, _t2)


def test_nok_error_fault_and_rejected_have_their_own_colour():
    css = CSS.read_text(encoding="utf-8")
    colours = dict(re.findall(r"--([a-z]+): (#[0-9a-f]{6})", css))

    def fill(key: str) -> str:
        rule = re.search(rf"\.s-{key} \{{[^}}]*fill: var\(--([a-z]+)\)", css)
        assert rule, key
        return colours[rule.group(1)]

    keys = ["nok"] + [o.lower() for o in OUTCOMES]
    assert len({fill(k) for k in keys}) == len(keys), {k: fill(k) for k in keys}
