#!/usr/bin/python3
"""How the texture head's share in a vision model's confidences moves its accuracy (issue 7).

usage: /usr/bin/python3 bench/vision_blend.py EVALUATE.json...

Each file is the output of `scisearch vision evaluate --json` (a model with a texture head):
every example carries the out-of-fold confidences of the blend the folds chose and of each
head alone (confidence, confidence_cnn, confidence_texture), each head calibrated by its own
temperature. A blend of calibrated logits with share w is, up to a constant per image, the
blend of the heads' log-probabilities, so any share can be scored again here without
training: for w = 0, 0.1, ..., 1, the accuracy and the mean log-loss over every file, next
to the accuracy of the share each fold chose on its held-out images.
"""
import json
import math
import sys


def blend(cnn, texture, w):
    z = [(1 - w) * math.log(max(c, 1e-12)) + w * math.log(max(t, 1e-12))
         for c, t in zip(cnn, texture)]
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().split('\n\n')[1])
    runs = []
    for path in sys.argv[1:]:
        try:
            run = json.load(open(path))
            examples = [e for e in run['examples'] if e.get('confidence_cnn')]
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f'{path}: not the output of scisearch vision evaluate --json ({e})')
        if not examples:
            sys.exit(f'{path}: no per-head confidences (a model without a texture head, or an '
                     'older scisearch)')
        runs.append((path, run, examples))

    shares = [k / 10 for k in range(11)]
    print('share  ' + '  '.join(f'{p.split("/")[-1][:14]:>14}' for p, _, _ in runs) +
          '    mean acc  mean log-loss')
    for w in shares:
        accuracies, losses = [], []
        for _, _, examples in runs:
            right, loss = 0, 0.0
            for e in examples:
                p = blend(e['confidence_cnn'], e['confidence_texture'], w)
                right += max(range(len(p)), key=p.__getitem__) == e['label']
                loss -= math.log(max(p[e['label']], 1e-12))
            accuracies.append(right / len(examples))
            losses.append(loss / len(examples))
        print(f'{w:5.1f}  ' + '  '.join(f'{a:14.3f}' for a in accuracies) +
              f'    {sum(accuracies) / len(runs):8.3f}  {sum(losses) / len(runs):13.3f}')
    print('chosen ' + '  '.join(f'{r["accuracy"]:14.3f}' for _, r, _ in runs) +
          f'    {sum(r["accuracy"] for _, r, _ in runs) / len(runs):8.3f}'
          '   (the share each fold chose: ' +
          '; '.join(' '.join(f'{w:.1f}' for w in r['fold_texture_weight']) for _, r, _ in runs) +
          ')')


if __name__ == '__main__':
    main()
