"""The platform's services: each exposes `async def run(config, *, task_status)`."""
