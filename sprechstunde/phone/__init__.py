"""Telephone callers in the same queue as video citizens (issue 20): a SIP endpoint (sip.py, PJSIP's
pjsua2), the spoken menu and the waiting line (ivr.py), prompts from the catalog (prompts.py) and the bridge
of a claimed call into its consultation room (bridge.py). No HTTP here: web/core wires it up (`serve
--sip-listen`)."""
