"""Where metrics go: the console, JSON lines, and TensorBoard when it is installed."""

from composer_swa.loggers.console import ConsoleLogger
from composer_swa.loggers.jsonl import JSONLinesLogger
from composer_swa.loggers.logger import Logger, LoggerDestination
from composer_swa.loggers.tensorboard import TensorBoardLogger

__all__ = ["ConsoleLogger", "JSONLinesLogger", "Logger", "LoggerDestination", "TensorBoardLogger"]
