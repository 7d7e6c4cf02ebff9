"""benchbed built-in plugin: datasets.

Synthetic vector data with their true densities (``mixtures``: gmm8, gmm25; ``rings``; ``swissroll``;
``pinwheel``; ``linear_gaussian``), images that work offline (``digits``: scikit-learn's 8x8 digits;
``shapes``: procedural dSprites-like images with ground-truth factors), and the standard image files
read from a data root with their official checksums (``idx``: mnist, fashion_mnist; ``cifar``:
cifar10; ``svhn``).  ``plugin`` registers them all.
"""
