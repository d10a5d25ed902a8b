"""Screens shown over the panes (the doctor report)."""
