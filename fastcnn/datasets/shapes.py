"""A generated 10-class colour image set for the seed article's Example 3 (64x64x3 inputs).

Each image is one shape on a noisy background. The class is the shape alone:

    0 circle   1 square   2 triangle (apex up)   3 ring       4 plus
    5 diamond  6 x-cross  7 horizontal bar       8 vertical bar  9 square frame

What varies, independently and uniformly, in every image: the shape's centre (anywhere that keeps
it inside the image), its size (radius 0.14 to 0.30 of the image side), its colour (random RGB in
[100, 255]) and the background colour (random RGB in [0, 90]); Gaussian noise (sigma 18) covers the
whole image. Colour and position therefore carry no information about the class, so a linear model
on the pixels does clearly worse than a CNN. Returned like ``mnist.load_data()``: uint8 NHWC images
and uint8 labels, ``(x_train, y_train), (x_test, y_test)``, classes balanced and shuffled,
deterministic for a given seed.
"""

import numbers

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "ring", "plus", "diamond", "x_cross",
               "horizontal_bar", "vertical_bar", "square_frame")


def _masks(label, dx, dy, r):
    """Boolean masks (n, size, size) of shape `label`; dx, dy are offsets from the centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    thickness = r / 4
    if label == 0:
        return dx * dx + dy * dy <= r * r
    if label == 1:
        return (ax <= 0.8 * r) & (ay <= 0.8 * r)
    if label == 2:
        return (dy <= r) & (ax <= (dy + r) / 2)
    if label == 3:
        distance = np.sqrt(dx * dx + dy * dy)
        return (distance <= r) & (distance >= 0.6 * r)
    if label == 4:
        return ((ax <= thickness) & (ay <= r)) | ((ay <= thickness) & (ax <= r))
    if label == 5:
        return ax + ay <= r
    if label == 6:
        return ((np.abs(dx - dy) <= thickness * 1.4) | (np.abs(dx + dy) <= thickness * 1.4)) & (np.maximum(ax, ay) <= 0.8 * r)
    if label == 7:
        return (ay <= thickness) & (ax <= r)
    if label == 8:
        return (ax <= thickness) & (ay <= r)
    return (ax <= 0.8 * r) & (ay <= 0.8 * r) & ~((ax <= 0.45 * r) & (ay <= 0.45 * r))


def _generate(count, image_size, rng):
    labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.uint8)
    radius = rng.uniform(0.14, 0.30, count) * image_size
    centre_x = rng.uniform(radius, image_size - 1 - radius)
    centre_y = rng.uniform(radius, image_size - 1 - radius)
    foreground = rng.uniform(100, 255, (count, 3))
    background = rng.uniform(0, 90, (count, 3))
    grid = np.arange(image_size, dtype=np.float64)
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    for label in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == label)
        if members.size == 0:
            continue
        dx = grid[None, None, :] - centre_x[members, None, None]
        dy = grid[None, :, None] - centre_y[members, None, None]
        mask = _masks(label, dx, dy, radius[members, None, None])
        colour = np.where(mask[..., None], foreground[members, None, None, :], background[members, None, None, :])
        noisy = colour + rng.normal(0.0, 18.0, colour.shape)
        images[members] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return images, labels


def load_data(num_train=5000, num_test=1000, image_size=64, seed=0):
    for name, value, minimum in (("num_train", num_train, 0), ("num_test", num_test, 0), ("image_size", image_size, 16)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    rng = np.random.default_rng(seed)
    train = _generate(int(num_train), int(image_size), rng)
    test = _generate(int(num_test), int(image_size), rng)
    return train, test
