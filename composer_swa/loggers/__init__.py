"""Where metrics go: the console, JSON lines, and TensorBoard when it is installed."""

from composer_swa.loggers.console import ConsoleLogger
from composer_swa.loggers.in_memory import InMemoryLogger
from composer_swa.loggers.jsonl import JSONLinesLogger
from composer_swa.loggers.logger import Logger, LoggerDestination
from composer_swa.loggers.tensorboard import TensorBoardLogger

__all__ = ["ConsoleLogger", "InMemoryLogger", "JSONLinesLogger", "Logger", "LoggerDestination", "TensorBoardLogger"]
