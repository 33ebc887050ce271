"""Payment gateway plug-ins: a checkout for a payment link, the gateway's webhook verified
and parsed, and a server-side status check. See `meterline.payments.base`."""
