"""`python -m scheduler`: run the clock process."""

import asyncio

from app import logs
from app.settings import load_or_exit
from scheduler.clock import run

settings = load_or_exit()
logs.configure(settings.log_level, settings.log_format)
asyncio.run(run(settings))
