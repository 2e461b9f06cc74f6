"""Placeholder replaced by the dashboard implementation."""

from __future__ import annotations

from fastapi import FastAPI

from chargegrid.services.platform import Platform


def mount_dashboard(app: FastAPI, platform: Platform) -> None:
    return None
