"""``PyDataset`` (alias ``Sequence``): Keras's base class for data that ``fit`` reads batch by batch."""

import itertools


class PyDataset:
    """Base class for a dataset of batches, as ``keras.utils.PyDataset``.

    Subclasses implement ``__len__`` (the number of batches) and ``__getitem__(index)`` (batch
    `index` as ``(x, y)`` or ``(x, y, sample_weight)``; ``(x,)`` or ``x`` alone for ``predict``),
    and may implement ``on_epoch_begin()`` / ``on_epoch_end()``, which ``fit`` calls around every
    epoch (and ``evaluate``/``predict`` around their pass), e.g. to reshuffle. An infinite
    dataset returns None from the ``num_batches`` property instead of defining ``__len__``;
    ``fit`` then needs ``steps_per_epoch``.

    ``fit(dataset, shuffle=True)`` (the default) visits the batches of a finite dataset in a new
    random order each epoch, as Keras does; ``shuffle=False`` visits them in index order.

    `workers`, `use_multiprocessing` and `max_queue_size` are accepted and stored for Keras
    compatibility; fastcnn reads batches on the calling thread (its kernels already use every core).

        class Batches(fastcnn.utils.PyDataset):
            def __init__(self, x, y, batch_size, **kwargs):
                super().__init__(**kwargs)
                self.x, self.y, self.batch_size = x, y, batch_size

            def __len__(self):
                return math.ceil(len(self.x) / self.batch_size)

            def __getitem__(self, index):
                part = slice(index * self.batch_size, (index + 1) * self.batch_size)
                return self.x[part], self.y[part]
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__(index)`, returning batch `index`.")

    @property
    def num_batches(self):
        """The number of batches (``len(self)``), or None for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement `__len__` (the number of batches), or "
                                  "the `num_batches` property returning None for an infinite dataset.")

    def __iter__(self):
        count = self.num_batches
        for index in range(count) if count is not None else itertools.count():
            yield self[index]

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


Sequence = PyDataset
