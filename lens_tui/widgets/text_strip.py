"""One-line rich ``Text`` as Textual ``Strip``, without rich's layout: for the line API.

Widgets that repaint on every key (the expert chart, the sparklines, the
control bar, the cards, the verdict, the layer line) draw line by line and keep each line's strip until
its text changes; :func:`row_strip` builds a strip in a fraction of what
``Text.render`` costs, and :class:`TextRows` is such a widget made of texts.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def row_strip(row: Text, base: RichStyle) -> Strip:
    """``row`` as a strip over ``base`` (the widget's colours): what ``row.render`` gives, faster.

    A chart row has a few spans (axis, bars, boundary), later ones over earlier
    ones as rich applies them; one segment per run between span edges. rich's
    own render of a row took three times as long (a third of a figure's cost).
    Styles given by name (``Text.append(..., style="bold")``) are parsed as rich
    parses them (its parse is cached).
    """
    plain, spans = row.plain, row.spans
    if row.style:
        base = base + _style(row.style)
    edges = sorted({0, len(plain), *(s.start for s in spans), *(s.end for s in spans)})
    segments = []
    for start, end in zip(edges, edges[1:]):
        if end > len(plain):
            break
        style = base
        for span in spans:
            if span.start <= start and end <= span.end:
                style = style + _style(span.style)
        segments.append(Segment(plain[start:end], style))
    return Strip(segments, row.cell_len)


def _style(style: str | RichStyle) -> RichStyle:
    return RichStyle.parse(style) if isinstance(style, str) else style


class TextRows(Widget):
    """A widget drawn from one rich ``Text`` per screen row (Textual's line API).

    A subclass says what its rows read at a width (:meth:`text_rows`, each fitted
    to the width); each row's strip is kept until that row's text, the width
    or the colours change. Drawn as one text through Textual's text layout, a
    small widget that changes on every key (the control bar, a card) cost
    about a millisecond a frame; a changed row here costs a few microseconds.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._row_strips: dict[int, tuple[tuple, Strip]] = {}
        self._frame_rows: list[Text] | None = None

    def text_rows(self, width: int) -> list[Text]:
        """The widget's rows at ``width``, one ``Text`` each, none wider than ``width``."""
        raise NotImplementedError

    def render(self) -> Text:
        """The rows as one text (for what reads a widget's render; the screen uses lines)."""
        return Text("\n", no_wrap=True, overflow="crop").join(self.text_rows(self.size.width))

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.text_rows(width))

    def show_rows(self, *, grow_only: bool = False) -> int:
        """Repaint after the rows changed; returns the lines gained (negative: lost), or 0.

        A layout pass (costly: at 160×48 it re-renders every widget on screen)
        is asked for only when an auto height no longer fits the rows. With
        ``grow_only`` fewer rows keep the taller height (blank lines below them).
        """
        fixed = self.styles.height is not None and not self.styles.height.is_auto
        width, height = self.size
        if fixed or not width:
            self.refresh(layout=not fixed)  # not laid out yet: measure it then
            return 0
        needed = len(self.text_rows(width))
        changed = needed > height or (needed < height and not grow_only)
        self.refresh(layout=changed)
        return needed - height if changed else 0

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_rows = self.text_rows(self.size.width)  # once a frame, not once a line
        try:
            return super().render_lines(crop)
        finally:
            self._frame_rows = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.visual_style.rich_style
        rows = self._frame_rows if self._frame_rows is not None else self.text_rows(width)
        if y >= len(rows):
            return Strip.blank(width, base)
        row = rows[y]
        key = (row.plain, tuple(row.spans), str(row.style), width, base)
        known = self._row_strips.get(y)
        if known is not None and known[0] == key:
            return known[1]
        strip = row_strip(row, base).crop_extend(0, width, base)
        self._row_strips[y] = (key, strip)
        return strip


class WrappedText(TextRows):
    """A text wrapped at word boundaries, for one that changes on every key (the verdict).

    Wrapped once per text and width (rich's word wrap), drawn line by line.
    Its height follows its text unless :meth:`show` is asked to let it only
    grow: then a shorter text keeps the taller height, blank lines below it,
    until it is shown again with ``grow_only=False``.
    """

    DEFAULT_CSS = """
    WrappedText {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = Text()
        self._wrapped: tuple[Text, int, list[Text]] | None = None  # (text, width, lines)

    def show(self, text: Text, *, grow_only: bool = False) -> int:
        """Show ``text``; returns the lines the widget gains (see :meth:`show_rows`)."""
        self.text = text
        return self.show_rows(grow_only=grow_only)

    def render(self) -> Text:
        """The text itself, unwrapped (as ``Static.render`` gives it)."""
        return self.text

    def text_rows(self, width: int) -> list[Text]:
        wrapped = self._wrapped
        if wrapped is None or wrapped[0] is not self.text or wrapped[1] != width:
            lines = list(self.text.wrap(self.app.console, max(1, width))) or [Text()]
            for line in lines:
                line.rstrip()  # the space a line was broken at is not drawn
            wrapped = self._wrapped = (self.text, width, lines)
        return wrapped[2]
