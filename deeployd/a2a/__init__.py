"""A2A 1.0: every agent of an organisation served as an Agent2Agent agent, every task a durable
`A2ATaskWorkflow`. See docs/a2a.md.

- `store`    — the `a2a_tasks` / `a2a_push_configs` rows and their A2A (protobuf) shapes
- `events`   — what goes on the `task:<taskId>` event-log stream, and its A2A stream events
- `service`  — create a task, deliver a follow-up message, cancel (Temporal)
- `handler`  — the a2a-sdk `RequestHandler` backed by the workflow, the store and the log
- `server`   — the a2a-sdk JSON-RPC / HTTP+JSON routes and agent cards, mounted on the API
- `tools`    — the `ask_user` and `call_agent` tools
"""
