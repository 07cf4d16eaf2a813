"""The order path: what happens to an order request, stage by stage. Start reading at
gatekeeper.orderpath.handler; the stages live in request, inputs, engine, record, answers and
report. It imports nothing from gatekeeper.web (the listener wires it in)."""
