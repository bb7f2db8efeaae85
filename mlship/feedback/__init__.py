"""Outcome feedback: served predictions recorded, outcomes joined to them, online quality measured."""
