"""Models serenity builds itself: the bundled example and the benchmark networks.

The benchmark zoo (:data:`BENCHMARKS`) rebuilds the irregularly wired networks
SERENITY (Ahn et al., MLSys 2020) evaluates on, as runnable ONNX models with
seeded random weights: DARTS (ImageNet), RandWire (CIFAR-10 and CIFAR-100)
and a SwiftNet-like network for human presence detection; plus NASNet-A
cells in the DARTS ImageNet network. Each module's
docstring says what follows the source and what had to be assumed;
:func:`count_weights_and_macs` compares them with the paper's sizes.
"""

from collections.abc import Callable

import onnx

from serenity.zoo.darts import (
    DARTS_V2,
    NASNET_A,
    Genotype,
    build_darts_imagenet,
    build_nasnet_a_imagenet,
)
from serenity.zoo.example import build_example
from serenity.zoo.randwire import (
    RANDWIRE_CIFAR10,
    RANDWIRE_CIFAR100,
    RandWireConfig,
    StageGraph,
    build_randwire,
    build_randwire_cifar10,
    build_randwire_cifar100,
    randwire_graphs,
    stage_graph,
)
from serenity.zoo.stats import count_weights_and_macs
from serenity.zoo.swiftnet import build_swiftnet_hpd

#: Full-size benchmark networks: name -> zero-argument builder.
BENCHMARKS: dict[str, Callable[[], onnx.ModelProto]] = {
    "darts_imagenet": build_darts_imagenet,
    "randwire_cifar10": build_randwire_cifar10,
    "randwire_cifar100": build_randwire_cifar100,
    "swiftnet_hpd": build_swiftnet_hpd,
    "nasnet_a_imagenet": build_nasnet_a_imagenet,
}

#: The sizes SERENITY's paper lists for them: name -> (weights, MACs).
PAPER_SIZES: dict[str, tuple[float, float]] = {
    "darts_imagenet": (4.7e6, 574.0e6),
    "randwire_cifar10": (1.2e6, 111.0e6),
    "randwire_cifar100": (4.7e6, 160.0e6),
    "swiftnet_hpd": (249.7e3, 57.4e6),
    # Not in SERENITY's table: NASNet-A (mobile) as published by Zoph et al.
    "nasnet_a_imagenet": (5.3e6, 564.0e6),
}

__all__ = [
    "BENCHMARKS",
    "DARTS_V2",
    "NASNET_A",
    "PAPER_SIZES",
    "RANDWIRE_CIFAR10",
    "RANDWIRE_CIFAR100",
    "Genotype",
    "RandWireConfig",
    "StageGraph",
    "build_darts_imagenet",
    "build_example",
    "build_nasnet_a_imagenet",
    "build_randwire",
    "build_randwire_cifar10",
    "build_randwire_cifar100",
    "build_swiftnet_hpd",
    "count_weights_and_macs",
    "randwire_graphs",
    "stage_graph",
]
