#!/usr/bin/python3
"""A classical texture baseline for the uhcs3 micrographs, beside scisearch's CNN (issue 7).

usage: /usr/bin/python3 bench/vision_texture_baseline.py [--uhcs DIR] [--side N] [--views V]
                                     [--l2 L] [--seeds K] [--cnn EVALUATE.json]

For each image: 125 hand-made texture statistics of the standardised image
  - intensity histogram (12 bins over -3..3 standard deviations), skewness, kurtosis;
  - radial power spectrum in 20 log-spaced bands (the MANIFEST's sanity baseline);
  - structure-tensor coherence at 4 scales (6-bin histogram and the log mean energy):
    lamellae (pearlite) are locally oriented, particles (spheroidite) are not;
  - |Laplacian of Gaussian| energy at 5 scales;
  - uniform local binary patterns (8 neighbours) at radii 1, 2, 4 and, at half size, 2, 4;
  - granulometry of the brightest 30% (area left after openings of growing size) and the
    share of its largest connected part: a carbide network is one connected web.
The statistics are taken of the whole image and of crops of half its sides (--views: the
four quadrants and the centre; textures change with magnification, and the crops give
the classifier more, and differently framed, examples). A multinomial logistic
regression (L2) trained on every view of the training images, an image predicted by the
geometric mean over its views, is scored by grouped,
stratified 5-fold cross-validation (the `group` column of split_shared.csv: images of one
field never straddle a fold), for K fold assignments (seeds), since one assignment moves the
accuracy by about 0.01.

With --cnn (the output of `scisearch vision evaluate --json`), it also scores the CNN's
out-of-fold confidences, their fusion with the texture model's (the sum of log
probabilities), and counts the images that both get wrong.

Needs Debian's python3-numpy, python3-scipy and python3-pil (scripts/install-deps.sh
--bench); run it with Debian's /usr/bin/python3.
"""
import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi


def uniform_lbp_histogram(img, r):
    """10-bin histogram of uniform 8-neighbour LBP codes at radius r (nearest sampling)."""
    h, w = img.shape
    centre = img[r:h - r, r:w - r]
    offsets = [(-r, 0), (-r, r), (0, r), (r, r), (r, 0), (r, -r), (0, -r), (-r, -r)]
    bits = np.stack([(img[r + dy:h - r + dy, r + dx:w - r + dx] >= centre).astype(np.int8)
                     for dy, dx in offsets])
    transitions = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(0)
    code = np.where(transitions <= 2, bits.sum(0), 9)
    hist = np.bincount(code.ravel(), minlength=10).astype(float)
    return hist / hist.sum()


def views_of(path, side, views):
    """The image (reduced to `side` when given) and, when views > 1, views - 1 crops of half
    its width and height: the four quadrants, then the centre."""
    image = Image.open(path).convert('L')
    scale = side / max(image.size) if side else 1.0
    if scale < 1:
        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)),
                             Image.BOX)
    w, h = image.size
    corners = [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2), (w // 4, h // 4)]
    crops = [image.crop((x, y, x + w // 2, y + h // 2)) for x, y in corners[:views - 1]]
    return [image] + crops


def texture_statistics(image):
    a = np.asarray(image, dtype=np.float64)
    a = (a - a.mean()) / (a.std() + 1e-6)
    f = list(np.histogram(np.clip(a, -3, 3), bins=12, range=(-3, 3))[0] / a.size)
    f += [(a ** 3).mean(), (a ** 4).mean()]

    power = np.abs(np.fft.fftshift(np.fft.fft2(a))) ** 2
    h, w = a.shape
    yy, xx = np.mgrid[-(h // 2):h - h // 2, -(w // 2):w - w // 2]
    radius = np.sqrt((yy / h) ** 2 + (xx / w) ** 2)
    edges = np.logspace(np.log10(2 / min(h, w)), np.log10(0.5), 21)
    bands = np.array([np.log(power[(radius >= edges[i]) & (radius < edges[i + 1])].mean() + 1e-9)
                      for i in range(20)])
    f += list(bands - bands.mean())

    for s in [1, 2, 4, 8]:
        g = ndi.gaussian_filter(a, s / 2)
        gx, gy = ndi.sobel(g, 1), ndi.sobel(g, 0)
        jxx = ndi.gaussian_filter(gx * gx, s * 1.5)
        jyy = ndi.gaussian_filter(gy * gy, s * 1.5)
        jxy = ndi.gaussian_filter(gx * gy, s * 1.5)
        energy = jxx + jyy
        coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (energy + 1e-9)
        f += list(np.histogram(coherence, bins=6, range=(0, 1))[0] / coherence.size)
        f.append(np.log(energy.mean() + 1e-9))

    f += [np.log(np.abs(ndi.gaussian_laplace(a, s) * s * s).mean() + 1e-9) for s in [1, 2, 4, 8, 16]]

    for r in [1, 2, 4]:
        f += list(uniform_lbp_histogram(a, r))
    half = ndi.zoom(a, 0.5, order=1)
    for r in [2, 4]:
        f += list(uniform_lbp_histogram(half, r))

    bright = a > np.percentile(a, 70)
    area = bright.sum() + 1
    for s in [1, 2, 3, 5, 8, 12]:
        f.append(ndi.binary_opening(bright, structure=np.ones((2 * s + 1, 2 * s + 1))).sum() / area)
    parts, n = ndi.label(bright)
    largest = np.bincount(parts.ravel())[1:].max() if n else 0
    f += [largest / area, np.log(n + 1)]
    return np.array(f)


def grouped_folds(y, groups, folds, seed):
    """Stratified grouped folds: each class's groups, shuffled, go largest first to the
    fold that holds the fewest images of that class."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    for c in sorted(set(y)):
        names = sorted(set(groups[y == c]))
        rng.shuffle(names)
        counts = [0] * folds
        for g in sorted(names, key=lambda g: -(groups == g).sum()):
            k = int(np.argmin(counts))
            fold[groups == g] = k
            counts[k] += (groups == g).sum()
    return fold


def fit_logistic(x, y, classes, l2, steps=2000, rate=0.5):
    w = np.zeros((x.shape[1], classes))
    b = np.zeros(classes)
    target = np.eye(classes)[y]
    for _ in range(steps):
        p = softmax(x @ w + b)
        w -= rate * (x.T @ (p - target) / len(x) + l2 * w)
        b -= rate * (p - target).mean(0)
    return w, b


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def cross_validated_probabilities(x, y, fold, classes, l2):
    """x: images x views x statistics. Trains on every view of the training images; an
    image's probabilities are the normalised geometric mean over its views."""
    prob = np.zeros((len(y), classes))
    views, width = x.shape[1], x.shape[2]
    for k in sorted(set(fold)):
        train, test = fold != k, fold == k
        a = x[train].reshape(-1, width)
        mean, sd = a.mean(0), a.std(0) + 1e-9
        w, b = fit_logistic((a - mean) / sd, np.repeat(y[train], views), classes, l2)
        p = softmax(((x[test].reshape(-1, width) - mean) / sd) @ w + b).reshape(-1, views, classes)
        prob[test] = softmax(np.log(p + 1e-9).mean(1))
    return prob


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--uhcs', default=str(Path(__file__).parent / '../../shared/data/images/uhcs3'))
    parser.add_argument('--side', type=int, default=0, help='reduce images to this longer side (0: as stored)')
    parser.add_argument('--seeds', type=int, default=6)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--views', type=int, default=6, choices=range(1, 7),
                        help='1: the whole image; up to 6: also crops of half its sides')
    parser.add_argument('--l2', type=float, default=1e-2)
    parser.add_argument('--cnn', help='output of scisearch vision evaluate --json on the same folder')
    args = parser.parse_args()
    root = Path(args.uhcs)
    rows = list(csv.DictReader(open(root / 'split_shared.csv')))
    labels = sorted({r['class'] for r in rows})
    paths = [r['path'] for r in rows]
    y = np.array([labels.index(r['class']) for r in rows])
    groups = np.array([r['group'] for r in rows])
    x = np.array([[texture_statistics(v) for v in views_of(root / p, args.side, args.views)]
                  for p in paths])
    print(f'{len(paths)} images, {args.views} views each, {x.shape[2]} texture statistics a view, '
          f'side {args.side or "as stored"}, L2 {args.l2}')

    cnn = None
    if args.cnn:
        by_path = {e['path'].split(root.name + '/')[-1]: np.array(e['confidence'])
                   for e in json.load(open(args.cnn))['examples']}
        cnn = np.array([by_path[p] for p in paths])
        print(f'CNN (--cnn): accuracy {(cnn.argmax(1) == y).mean():.3f}')

    for seed in range(args.seeds):
        fold = grouped_folds(y, groups, args.folds, seed)
        texture = cross_validated_probabilities(x, y, fold, len(labels), args.l2)
        line = f'folds seed {seed}: texture {(texture.argmax(1) == y).mean():.3f}'
        if cnn is not None:
            fused = np.log(cnn + 1e-9) + np.log(texture + 1e-9)
            both = ((cnn.argmax(1) != y) & (texture.argmax(1) != y)).sum()
            line += f', fused with the CNN {(fused.argmax(1) == y).mean():.3f}, wrong in both {both}'
        print(line)


if __name__ == '__main__':
    sys.exit(main())
