"""What a reader sees of each text in the widget, measured in a real browser, and what is wrong with it.

`texts(page)` returns every visible text box of the widget: its title, the Pause control, the footer,
and per coin of the first list its icon, name, symbol, price, change and note (in the table layout: each
header, and per row the icon, name, symbol and every cell as shown, "cell <i>"). Each has `box`, the
extent of its glyphs (a Range over its contents, so text running out of its element counts); `seen`,
that box clipped by every ancestor that hides its overflow up to the widget (what the reader sees);
and `whole`, clipped only up to the coin's row (on the ticker's tape, whose strip shows the coins in
turn, a coin past the strip's edge is not cut); and `first`, the box of its first letter. Boxes are
viewport pixels {left, right, top, bottom}. `text_faults` turns them into sentences.
"""

from __future__ import annotations

from typing import Any, cast

TOLERANCE = 0.5  # px: sub-pixel rounding is no overlap and no cut
# A name or symbol too long for its room ends in "…" by design (the other one, or the icon, still tells
# the coin); anything else cut loses information.
MAY_BE_CUT = frozenset({"name", "symbol"})

TEXTS = """() => {
  const tk = document.querySelector('.tk');
  const rect = (r) => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
  const clip = (el, b, stop) => {
    for (let a = el; a && a !== stop.parentElement; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.display === 'none' || style.visibility === 'hidden') return null;
      if (style.overflowX !== 'visible') {
        const c = a.getBoundingClientRect();
        b = {left: Math.max(b.left, c.left), right: Math.min(b.right, c.right),
             top: Math.max(b.top, c.top), bottom: Math.min(b.bottom, c.bottom)};
      }
    }
    return b;
  };
  const items = [];
  const shown = (b) => b.right - b.left > 0.5 && b.bottom - b.top > 0.5 ? b : null;
  const add = (what, el, row, stop) => {
    if (!el) return;
    let box;
    if (el.tagName === 'IMG' || el.tagName === 'svg') box = rect(el.getBoundingClientRect());
    else {
      const range = document.createRange();
      range.selectNodeContents(el);
      box = rect(range.getBoundingClientRect());
    }
    if (!shown(box)) return;  // not rendered
    const seen = clip(el, box, tk);
    if (seen === null) return;
    // Where its first letter stands: a text cut short must keep its beginning.
    const text = document.createTreeWalker(el, NodeFilter.SHOW_TEXT).nextNode();
    let first = null;
    if (text && text.data.trim()) {
      const at = text.data.length - text.data.trimStart().length, range = document.createRange();
      range.setStart(text, at);
      range.setEnd(text, at + 1);
      first = rect(range.getBoundingClientRect());
    }
    items.push({what, row, text: el.textContent.trim(), box, first, seen: shown(seen),
                whole: shown(clip(el, box, stop))});
  };
  add('title', tk.querySelector('h2'), null, tk);
  for (const el of tk.querySelectorAll('label[for=tk-pause] > span:not(.sr-only)')) add('pause', el, null, tk);
  add('footer', tk.querySelector('.tk-foot'), null, tk);
  const tape = tk.querySelector('.tk-tape') !== null;
  // The table layout: each header, and per row its icon, name, symbol and each figure as shown (the visible
  // half of a cell that also has screen-reader text).
  const shownPart = (cell) => cell.querySelector(':scope > span[aria-hidden=true]') || cell;
  for (const th of tk.querySelectorAll('thead th')) add('header', shownPart(th), null, tk);
  for (const tr of tk.querySelectorAll('tbody tr[data-k]')) {
    const row = tr.dataset.k;
    add('icon', tr.querySelector('.tk-c img'), row, tk);
    add('name', tr.querySelector('.tk-c b'), row, tk);
    add('symbol', tr.querySelector('.tk-c small'), row, tk);
    tr.querySelectorAll('td').forEach((td, i) => {
      if (!td.querySelector('svg')) add('cell ' + i, shownPart(td), row, tk);
      else add('sparkline ' + i, td.querySelector('svg'), row, tk);
    });
  }
  for (const li of (tk.querySelector('ol') || document.createElement('ol')).querySelectorAll('li[data-k]')) {
    const stop = tape ? li : tk, row = li.dataset.k;
    add('icon', li.querySelector('img'), row, stop);
    add('name', li.querySelector('.tk-n b'), row, stop);
    add('symbol', li.querySelector('.tk-n small'), row, stop);
    add('price', li.querySelector('.tk-v b'), row, stop);
    add('change', li.querySelector('.tk-v small:not(.tk-asof)'), row, stop);
    add('note', li.querySelector('.tk-asof'), row, stop);
  }
  const html = document.documentElement;
  return {items, width: html.clientWidth, scroll_width: html.scrollWidth};
}"""


def texts(page: Any) -> dict[str, Any]:
    """{items: [{what, row (a symbol, or None), text, box, seen and whole (None when clipped away)}],
    width, scroll_width}."""
    return cast(dict[str, Any], page.evaluate(TEXTS))


def label(item: dict[str, Any]) -> str:
    return f"{item['row']} {item['what']}" if item["row"] else str(item["what"])


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > TOLERANCE
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > TOLERANCE
    )


def cut(item: dict[str, Any]) -> bool:
    whole, box = item["whole"], item["box"]
    return whole is None or any(abs(whole[side] - box[side]) > TOLERANCE for side in ("left", "right", "top", "bottom"))


def beginning_shown(item: dict[str, Any]) -> bool:
    """The first letter of a text lies inside what its row shows of it (an ellipsis cuts the end, not the start)."""
    first, whole = item["first"], item["whole"]
    if first is None:
        return True
    return (
        whole is not None
        and whole["left"] - TOLERANCE <= first["left"]
        and first["right"] <= whole["right"] + TOLERANCE
    )


def text_faults(found: dict[str, Any]) -> list[str]:
    """Sentences for each text that is cut (but a name or symbol that ends in "…" and keeps its beginning),
    runs out of the page sideways, or overlaps another text; and for a page that scrolls sideways."""
    faults = []
    width = found["width"]
    if found["scroll_width"] > width:
        faults.append(f"the page scrolls sideways: {found['scroll_width']} px wide in {width} px")
    items = found["items"]
    for item in items:
        if item["what"] not in MAY_BE_CUT and cut(item):
            faults.append(f"{label(item)} {item['text']!r} is cut: {item['box']} shows {item['whole']}")
        elif cut(item) and not beginning_shown(item):
            faults.append(f"{label(item)} {item['text']!r} is cut at its beginning: {item['whole']}")
        seen = item["seen"]
        if seen is not None and (seen["left"] < -TOLERANCE or seen["right"] > width + TOLERANCE):
            faults.append(f"{label(item)} {item['text']!r} runs out of the page ({width} px): {seen}")
    shown = [item for item in items if item["seen"] is not None]
    for i, a in enumerate(shown):
        for b in shown[i + 1 :]:
            if overlap(a["seen"], b["seen"]):
                faults.append(f"{label(a)} {a['text']!r} {a['seen']} overlaps {label(b)} {b['text']!r} {b['seen']}")
    return faults
