"""Compressed sparse row matrices in numpy: the little of scipy.sparse that the code graph uses.

Importing scipy.sparse costs ~0.12 s (most of it its array-API layer), more than the rest of the graph
work of a build after a one-file change (patching the matrices and two PageRanks). The graph needs only
matrices made from (row, column, weight) triples with duplicates summed, row blocks stacked, a sum, and
the products of PageRank, which numpy does directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CSR:
    """A sparse matrix by rows: row r's entries are `data[indptr[r]:indptr[r+1]]`, in the columns
    `indices[...]` (ascending and distinct within a row when made by `from_triples`)."""

    data: np.ndarray  # float64
    indices: np.ndarray  # int32 column of each entry
    indptr: np.ndarray  # int64, rows + 1 offsets into data and indices
    shape: tuple[int, int]

    @classmethod
    def from_triples(cls, rows: np.ndarray | Sequence[int], cols: np.ndarray | Sequence[int],
                     weights: np.ndarray | Sequence[float], shape: tuple[int, int]) -> CSR:
        """The matrix with `weights[k]` at (`rows[k]`, `cols[k]`); the weights of a repeated cell add up
        (always in the same order for the same triples: a patched graph must equal a rebuilt one)."""
        row = np.asarray(rows, dtype=np.int64)
        col = np.asarray(cols, dtype=np.int64)
        data = np.asarray(weights, dtype=np.float64)
        if not row.size == col.size == data.size:
            raise ValueError("rows, columns and weights differ in length")
        n_rows, n_cols = int(shape[0]), int(shape[1])
        if row.size:
            if row.min() < 0 or col.min() < 0 or row.max() >= n_rows or col.max() >= n_cols:
                raise ValueError("an entry lies outside the matrix")
            key = row * n_cols + col
            order = np.argsort(key, kind="stable")  # stable: the same sum for the same triples
            key = key[order]
            first = np.empty(key.size, dtype=bool)
            first[0] = True
            np.not_equal(key[1:], key[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            data = np.add.reduceat(data[order], starts)
            row, col = np.divmod(key[starts], n_cols)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
        return cls(data, col.astype(np.int32), indptr, (n_rows, n_cols))

    @classmethod
    def checked(cls, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: Sequence[int]) -> CSR:
        """A matrix from its arrays as stored, after checking they make one (a damaged copy raises ValueError)."""
        if len(shape) != 2:
            raise ValueError("a matrix has two dimensions")
        n_rows, n_cols = int(shape[0]), int(shape[1])
        indptr = np.asarray(indptr, dtype=np.int64)
        indices = np.asarray(indices)
        if (n_rows < 0 or n_cols < 0 or indptr.shape != (n_rows + 1,) or indptr[0] != 0
                or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices) or len(indices) != len(data)
                or (len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_cols))):
            raise ValueError("inconsistent sparse matrix")
        return cls(np.asarray(data, dtype=np.float64), indices.astype(np.int32), indptr, (n_rows, n_cols))

    @property
    def nnz(self) -> int:
        return len(self.data)

    def entry_rows(self) -> np.ndarray:
        """The row of each entry."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of the entries, row by row."""
        return self.entry_rows(), self.indices.astype(np.int64), self.data

    def row_sums(self) -> np.ndarray:
        return np.bincount(self.entry_rows(), weights=self.data, minlength=self.shape[0]).astype(np.float64)

    def transposed(self) -> CSR:
        rows, cols, data = self.triples()
        return CSR.from_triples(cols, rows, data, (self.shape[1], self.shape[0]))

    def plus(self, other: CSR) -> CSR:
        """The sum of two matrices of one shape."""
        if self.shape != other.shape:
            raise ValueError("matrices of different shapes")
        mine, theirs = self.triples(), other.triples()
        return CSR.from_triples(*(np.concatenate([a, b]) for a, b in zip(mine, theirs, strict=True)), self.shape)

    def toarray(self) -> np.ndarray:
        dense = np.zeros(self.shape)
        rows, cols, data = self.triples()
        np.add.at(dense, (rows, cols), data)
        return dense


def vstack(blocks: Sequence[CSR]) -> CSR:
    """Row blocks of one width, one under the other."""
    if not blocks:
        raise ValueError("nothing to stack")
    width = blocks[0].shape[1]
    if any(block.shape[1] != width for block in blocks):
        raise ValueError("blocks of different widths")
    offsets = np.cumsum([0] + [block.nnz for block in blocks])
    indptr = np.concatenate([np.zeros(1, dtype=np.int64)]
                            + [block.indptr[1:] + offset for block, offset in zip(blocks, offsets, strict=False)])
    return CSR(np.concatenate([block.data for block in blocks]),
               np.concatenate([block.indices for block in blocks]).astype(np.int32), indptr,
               (sum(block.shape[0] for block in blocks), width))
