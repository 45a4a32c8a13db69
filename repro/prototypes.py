"""The ten RBF prototypes: stylised 7x12 bitmaps of the digits (Sec. II-B, Fig. 3).

The paper shows them only as a picture, so these are drawn by hand in its spirit (assumption A4 of
PAPER_NOTES.md): a thin, ASCII-font-like digit filling the 7x12 box. '#' is +1 (ink), '.' is -1 (background), matching the
input scaling where ink is positive. Being distinct +-1 codes is what matters to the RBF layer; their
pairwise distances are tabulated in results/tables/prototypes.md and discussed in PAPER_NOTES.md.
"""
import torch

from . import paper

BITMAPS = {
    0: """
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..""",
    1: """
...#...
..##...
.#.#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
.#####.""",
    2: """
..###..
.#...#.
#.....#
......#
.....#.
....#..
...#...
..#....
.#.....
#......
#......
#######""",
    3: """
.#####.
#.....#
......#
......#
.....#.
..###..
.....#.
......#
......#
......#
#.....#
.#####.""",
    4: """
.....#.
....##.
...#.#.
..#..#.
.#...#.
#....#.
#######
.....#.
.....#.
.....#.
.....#.
.....#.""",
    5: """
#######
#......
#......
#......
######.
......#
......#
......#
......#
......#
#.....#
.#####.""",
    6: """
..####.
.#.....
#......
#......
#.###..
##...#.
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..""",
    7: """
#######
......#
......#
.....#.
.....#.
....#..
....#..
...#...
...#...
..#....
..#....
..#....""",
    8: """
..###..
.#...#.
#.....#
#.....#
.#...#.
..###..
.#...#.
#.....#
#.....#
#.....#
.#...#.
..###..""",
    9: """
..###..
.#...#.
#.....#
#.....#
#.....#
.#...##
..###.#
......#
......#
.....#.
....#..
.###...""",
}


def prototypes(kind="bitmaps") -> torch.Tensor:
    """(10, 84) float tensor of +-1: "bitmaps", row d = digit d's bitmap read row by row; or "distant"
    (an ablation of A4), codes with no picture, every pair 40 to 42 apart (distant_codes())."""
    if kind == "distant":
        return distant_codes()
    rows = []
    for digit in range(10):
        lines = BITMAPS[digit].strip().splitlines()
        assert len(lines) == paper.BITMAP_HEIGHT and all(len(l) == paper.BITMAP_WIDTH for l in lines), digit
        rows.append([1.0 if ch == "#" else -1.0 for ch in "".join(lines)])
    return torch.tensor(rows)


def distant_codes() -> torch.Tensor:
    """(10, 84) float tensor of +-1: rows 1-10 of the 128 x 128 Sylvester-Hadamard matrix, its first 84
    columns. Entry (k, c) is (-1)^popcount(k & c), so two rows differ where their xor row is -1: in 32
    of the first 64 columns and 8 to 10 of the next 20: 40 to 42 in all. The hand-drawn bitmaps put 0 and 6
    only 11 apart."""
    return torch.tensor([[(-1.0) ** bin(k & c).count("1") for c in range(paper.BITMAP_HEIGHT * paper.BITMAP_WIDTH)]
                         for k in range(1, 11)])
