"""Operator dashboard: server-rendered pages with live updates over Server-Sent Events."""
