"""Webhooks (docs/webhooks.md): endpoints registered per practice, the durable record of the events they carry
(written by the notification outbox before it acknowledges the stream entries), and their delivery at least
once, in order per appointment, signed per Standard Webhooks, retried with backoff until the retry window ends."""
