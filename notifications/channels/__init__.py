"""Delivery channels behind one small interface; see :mod:`notifications.channels.base`."""
