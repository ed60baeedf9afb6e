"""Tables that stay readable on any terminal and in any pipe: a rich table when its columns fit, else the same
rows as key/value records, each value whole (never a word split across lines). The CLI and the planner's report
print every table through ``print_table``, and write counts and dollars with ``count_text`` and ``usd_text``, so a
tiny model reads "4.8K parameters" and "$0.03", not "0.00B" and "$0"."""

from __future__ import annotations

from typing import Any


def _longest_word(cell: Any) -> int:
    from rich.text import Text

    plain = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
    return max((len(word) for word in plain.split()), default=0)


def fits(console: Any, table: Any) -> bool:
    """Whether ``table`` fits ``console``'s width with no word cut or split: each column is given at least its
    longest word (header or cell) as its minimum width, and their sum, with padding and borders, must fit."""
    needed = len(table.columns) + 1 if table.box else 0  # the vertical rules
    for column in table.columns:
        longest = max([_longest_word(column.header) if table.show_header else 0,
                       *(_longest_word(cell) for cell in column.cells)])
        column.min_width = max(column.min_width or 0, longest)
        needed += column.min_width + table.padding[1] + table.padding[3]
    return needed <= console.width


def print_pairs(console: Any, title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column key/value table, printed as ``print_table`` prints one, but rich's table machinery (0.04 s of
    imports) is loaded only when the table is drawn: a pipe or a narrow terminal gets the ``key: value`` lines."""
    needed = 3 + sum(max(_longest_word(row[i]) for row in rows) + 2 for i in (0, 1))  # rich's default padding
    if needed > console.width:
        console.print(title)
        for key, value in rows:
            console.print(key, value, sep=": ", soft_wrap=True)
        return
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column()
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    print_table(console, table)


def print_table(console: Any, table: Any) -> None:
    """``table`` as it is when it fits; else its title, then each row as ``header: value`` lines (a table without
    headers, which is already key/value, as ``key: value``), rows apart by a blank line."""
    if fits(console, table):
        console.print(table)
        return
    if table.title:
        console.print(table.title)
    headers = [str(c.header) for c in table.columns]
    rows = list(zip(*(list(c.cells) for c in table.columns), strict=True)) if table.columns else []
    keyed = not table.show_header and len(headers) == 2
    for i, row in enumerate(rows):
        if keyed:
            console.print(row[0], row[1], sep=": ", soft_wrap=True)
            continue
        if i:
            console.print()
        for header, cell in zip(headers, row, strict=True):
            if str(cell):
                console.print(f"{header or '#'}:", cell, soft_wrap=True)


def count_text(count: float) -> str:
    """A count in a readable unit: 950, 4.8K, 1.27M, 6.74B."""
    for unit, scale, digits in (("B", 1e9, 2), ("M", 1e6, 2), ("K", 1e3, 1)):
        if abs(count) >= scale:
            return f"{count / scale:,.{digits}f}{unit}"
    return f"{count:,.0f}"


def flops_text(flops: float) -> str:
    """FLOPs in a readable unit: 12.3 GFLOP, 35.1 MFLOP."""
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if abs(flops) >= scale:
            return f"{flops / scale:,.1f} {unit}"
    return f"{flops:,.0f} FLOP"


def usd_text(usd: float) -> str:
    """Dollars without a number that rounds to nothing: 1,234 / 12.50 / 0.03 / <0.01."""
    if usd >= 100:
        return f"{usd:,.0f}"
    if usd >= 0.01 or usd == 0:
        return f"{usd:,.2f}"
    return "<0.01"
