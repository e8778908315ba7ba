"""Figures drawn for the book's content column: one width, legible labels, one colour per method.

The book's pages show a figure at its natural size (``dpi`` pixels an inch) or shrink it to the
content column, whichever is smaller. A figure :data:`WIDTH` inches wide at :data:`DPI` is
:data:`WIDTH` × :data:`DPI` = 700 pixels, inside the column of a 1280-pixel window
(``tests/test_browser.py`` measures it), so a label of :data:`MIN_FONT_PT` points is drawn
``MIN_FONT_PT × DPI / 72`` ≈ 11 pixels high, above a footnote's 9.

Use :func:`panels` for a figure of ``n`` panels (at most :data:`MAX_COLUMNS` side by side, the
rest stacked), :func:`method_colors` for the colours (the method registry's order, so a method
has the same colour in every figure of the book), :func:`legend_below` instead of point labels
that collide, and :func:`legibility_problems` to check a figure against these rules.
"""

from __future__ import annotations

from collections.abc import Iterable

WIDTH = 7.0
"""Every figure's width in inches (700 pixels at :data:`DPI`)."""
DPI = 100
"""Pixels an inch of the saved figure (matplotlib's default ``figure.dpi``)."""
MAX_COLUMNS = 2
"""Panels side by side, at most; more are stacked in rows."""
MIN_FONT_PT = 8.0
"""The smallest text in a figure, in points (about 11 pixels at :data:`DPI`)."""
FIXED_COLORS = {"original": "#7f7f7f", "retrain": "#000000"}
"""The two reference models: grey (before unlearning) and black (the target)."""

BOOK_STYLE = {"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9.5, "axes.titlesize": 10,
              "axes.labelsize": 9.5, "xtick.labelsize": MIN_FONT_PT + 0.5, "ytick.labelsize": MIN_FONT_PT + 0.5,
              "legend.fontsize": MIN_FONT_PT + 0.5, "legend.title_fontsize": 9.5}
"""matplotlib settings every book figure is drawn with (:func:`use_book_style`)."""


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib (chapters call it in their setup cell)."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_STYLE)


def panels(n: int, *, panel_height: float = 3.2, columns: int = MAX_COLUMNS, **subplot_kw):
    """A figure :data:`WIDTH` inches wide with ``n`` panels, ``min(n, columns)`` side by side.

    Returns ``(fig, axes)``: ``axes`` a flat list of the ``n`` visible axes (unused cells of
    the last row hidden). ``columns`` above :data:`MAX_COLUMNS` is refused."""
    import matplotlib.pyplot as plt

    if not 1 <= columns <= MAX_COLUMNS:
        raise ValueError(f"columns must be 1..{MAX_COLUMNS} (a book figure has at most {MAX_COLUMNS} "
                         f"panels side by side); got {columns!r}")
    if n < 1:
        raise ValueError(f"a figure needs at least one panel; got n={n!r}")
    use_book_style()
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(WIDTH, panel_height * rows), squeeze=False, **subplot_kw)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """``{method: colour}``: :data:`FIXED_COLORS` for original and retrain, otherwise the
    method's place in the registry (:data:`unlearnkit.methods.METHODS`) on seaborn's
    ``colorblind`` palette, then ``tab20`` past ten; a name the registry does not hold
    (a plug-in loaded later) comes after every registered one."""
    import seaborn as sns

    from .methods import METHODS

    registered = [m for m in METHODS if m not in FIXED_COLORS]
    colours = [*sns.color_palette("colorblind", 10).as_hex(), *sns.color_palette("tab20", 20).as_hex()]
    out = {}
    for method in dict.fromkeys(methods):
        if method in FIXED_COLORS:
            out[method] = FIXED_COLORS[method]
        else:
            place = registered.index(method) if method in registered else len(registered) + len(out)
            out[method] = colours[place % len(colours)]
    return out


def legend_entries(axes) -> tuple[list, list[str]]:
    """``(handles, labels)``: the union of the panels' labelled artists, first seen first."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def legend_below(fig, axes, *, columns: int = 4, handles=None, labels=None, title: str | None = None) -> None:
    """One legend for the whole figure under its panels (:func:`legend_entries` of ``axes``
    unless ``handles``/``labels`` are given), instead of labels beside points that overlap."""
    if handles is None:
        handles, labels = legend_entries(axes)
    fig.tight_layout()
    if not handles:
        return
    rows = -(-len(handles) // columns)
    fig.legend(handles, labels, loc="lower center", ncol=min(columns, len(handles)), frameon=False, title=title,
               bbox_to_anchor=(0.5, 0))
    bottom = (0.35 + 0.22 * rows + (0.22 if title else 0)) / fig.get_size_inches()[1]
    fig.subplots_adjust(bottom=min(bottom + 0.08, 0.6))


def legibility_problems(fig) -> list[str]:
    """What keeps ``fig`` from reading well in the book's column: wider than :data:`WIDTH`,
    more than :data:`MAX_COLUMNS` panels with drawn axes in a row (a grid of images is not
    counted), or visible text under
    :data:`MIN_FONT_PT`. An empty list when it reads well."""
    from matplotlib.text import Text

    problems = []
    width = fig.get_size_inches()[0]
    if width > WIDTH + 1e-6:
        problems.append(f"{width:.1f} inches wide (at most {WIDTH})")
    rows: dict[float, int] = {}
    for ax in fig.axes:
        if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":  # thumbnails have no axes drawn
            top = round(ax.get_position().y1, 2)
            rows[top] = rows.get(top, 0) + 1
    if rows and max(rows.values()) > MAX_COLUMNS:
        problems.append(f"{max(rows.values())} panels side by side (at most {MAX_COLUMNS})")
    small = sorted({f"{t.get_text()!r} at {t.get_fontsize():.1f} pt" for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT - 1e-6})
    if small:
        problems.append(f"text under {MIN_FONT_PT} pt: {', '.join(small[:5])}")
    return problems
