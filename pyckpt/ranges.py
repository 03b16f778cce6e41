"""Address ranges as sorted, non-overlapping lists of (start, end), end
exclusive: what dump and restore intersect and subtract when they work out
which pages are whose (copy-on-write sharing, pages to write or drop)."""

import collections

Range = collections.namedtuple("Range", "start end")


def merge(ranges):
    """Any (start, end) pairs, sorted, with overlapping and touching ones joined."""
    out = []
    for start, end in sorted(ranges):
        if out and start <= out[-1].end:
            out[-1] = Range(out[-1].start, max(out[-1].end, end))
        else:
            out.append(Range(start, end))
    return out


def intersect(a, b):
    """What both sorted range lists cover."""
    out, j = [], 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            lo, hi = max(start, b[k][0]), min(end, b[k][1])
            if lo < hi:
                out.append(Range(lo, hi))
            k += 1
    return out


def subtract(a, b):
    """What sorted range list `a` covers and `b` does not."""
    out, j = [], 0
    for start, end in a:
        cursor = start
        while j < len(b) and b[j][1] <= cursor:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                out.append(Range(cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            out.append(Range(cursor, end))
    return out
