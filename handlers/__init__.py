"""Tornado request handlers: thin HTTP adapters over the core, bus and store.

Each handler takes its dependencies through `initialize` from its route's
dict; none reads module globals. Errors are always JSON (see handlers/base.py).
"""
