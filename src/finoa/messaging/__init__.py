"""Inbox, outbox, dispatcher and the retry policy: how finoa talks to other systems reliably."""
