"""finoa — the open finance ⇄ OA integration hub (财务-OA 一体化集成中台)."""

__version__ = "0.1.0"
