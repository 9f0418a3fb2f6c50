"""The interactive monitor (Textual). The only package that imports Textual."""

from __future__ import annotations
