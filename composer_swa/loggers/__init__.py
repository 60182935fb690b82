"""Where metrics go: the console and JSON lines (TensorBoard joins with the YAML runs)."""

from composer_swa.loggers.console import ConsoleLogger
from composer_swa.loggers.jsonl import JSONLinesLogger
from composer_swa.loggers.logger import Logger, LoggerDestination

__all__ = ["ConsoleLogger", "JSONLinesLogger", "Logger", "LoggerDestination"]
