"""The deliberation application: the engine, the worker task and the control API."""

from django.apps import AppConfig


class DeliberationConfig(AppConfig):
    name = "deliberation"
