"""Data for training: 2-D toys, the scikit-learn digits, Gaussian-mixture targets and user files."""

from .digits import Digits, DigitsClassifier, digits_classifier, load_digits, train_digits_classifier
from .files import FileData, load_file_data
from .sources import DataSource, data_names, get_data, transform_to_data
from .toys import TOYS, sample_toy

__all__ = [
    "TOYS",
    "sample_toy",
    "Digits",
    "DigitsClassifier",
    "digits_classifier",
    "load_digits",
    "train_digits_classifier",
    "FileData",
    "load_file_data",
    "DataSource",
    "data_names",
    "get_data",
    "transform_to_data",
]
