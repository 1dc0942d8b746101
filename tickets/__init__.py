"""Tickets (工单): the store, the 12345 workflow, deadlines, routing, rates and their HTTP API."""
