// A large image with zoom and pan: mouse wheel (around the pointer), drag, the buttons, and the
// keyboard when the image has focus (+ / - zoom, 0 fit, 1 actual pixels, arrows pan).

import { h } from './dom.js';

const MIN_SCALE = 0.1;
const MAX_SCALE = 64;

export class ImageViewer {
  // Builds the viewer inside `container`; `label` names the image for assistive technology.
  constructor(container, { label = 'Image' } = {}) {
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.fitted = true;
    this.image = h('img', { class: 'viewer-image', alt: '', draggable: 'false', decoding: 'async' });
    this.empty = h('p', { class: 'viewer-empty', hidden: true }, 'No image for this signal.');
    this.stage = h(
      'div',
      {
        class: 'viewer-stage',
        tabindex: '0',
        role: 'group',
        'aria-label': `${label}: scroll or press + and - to zoom, drag or use the arrow keys to pan, 0 to fit`,
      },
      this.image,
      this.empty,
    );
    this.zoomLabel = h('output', { class: 'viewer-zoom', 'aria-live': 'polite' }, '');
    const button = (text, title, action) =>
      h('button', { type: 'button', class: 'button small', title, 'aria-label': title, onclick: action }, text);
    const controls = h(
      'div',
      { class: 'viewer-controls', role: 'toolbar', 'aria-label': 'Zoom' },
      button('−', 'Zoom out (-)', () => this.zoomBy(1 / 1.5)),
      button('+', 'Zoom in (+)', () => this.zoomBy(1.5)),
      button('Fit', 'Fit to the frame (0)', () => this.fit()),
      button('1:1', 'Actual pixels (1)', () => this.actualSize()),
      this.zoomLabel,
    );
    container.replaceChildren(h('div', { class: 'viewer' }, this.stage, controls));

    this.image.addEventListener('load', () => this.fit());
    this.stage.addEventListener('wheel', (event) => this.onWheel(event), { passive: false });
    this.stage.addEventListener('pointerdown', (event) => this.onPointerDown(event));
    this.stage.addEventListener('keydown', (event) => this.onKey(event));
    this.resizeObserver = new ResizeObserver(() => {
      if (this.fitted) this.fit();
    });
    this.resizeObserver.observe(this.stage);
  }

  // Shows the image at `src` (null: none), fitted to the frame; `alt` describes it.
  show(src, alt = '') {
    this.image.alt = alt;
    if (!src) {
      this.image.hidden = true;
      this.image.removeAttribute('src');
      this.empty.hidden = false;
      return;
    }
    this.empty.hidden = true;
    this.image.hidden = false;
    this.image.onerror = () => {
      this.image.hidden = true;
      this.empty.hidden = false;
    };
    this.image.src = src;
  }

  fit() {
    const w = this.image.naturalWidth;
    const ht = this.image.naturalHeight;
    const box = this.stage.getBoundingClientRect();
    if (!w || !ht || !box.width || !box.height) return;
    this.scale = Math.min(box.width / w, box.height / ht);
    this.x = (box.width - w * this.scale) / 2;
    this.y = (box.height - ht * this.scale) / 2;
    this.fitted = true;
    this.apply();
  }

  actualSize() {
    const box = this.stage.getBoundingClientRect();
    this.zoomAt(1 / this.scale, box.width / 2, box.height / 2);
  }

  zoomBy(factor) {
    const box = this.stage.getBoundingClientRect();
    this.zoomAt(factor, box.width / 2, box.height / 2);
  }

  // Zooms by `factor` keeping the image point under (cx, cy) (stage coordinates) in place.
  zoomAt(factor, cx, cy) {
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const applied = next / this.scale;
    this.x = cx - (cx - this.x) * applied;
    this.y = cy - (cy - this.y) * applied;
    this.scale = next;
    this.fitted = false;
    this.apply();
  }

  pan(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
    this.apply();
  }

  apply() {
    this.image.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    // Beyond 1:1 the pixels are the data: show them as squares, not smoothed.
    this.image.classList.toggle('pixelated', this.scale > 1.5);
    this.zoomLabel.textContent = `${Math.round(this.scale * 100)}%`;
  }

  onWheel(event) {
    event.preventDefault();
    const box = this.stage.getBoundingClientRect();
    const factor = Math.exp(-Math.sign(event.deltaY) * Math.min(Math.abs(event.deltaY), 100) * 0.004);
    this.zoomAt(factor, event.clientX - box.left, event.clientY - box.top);
  }

  onPointerDown(event) {
    if (event.button !== 0) return;
    const startX = event.clientX;
    const startY = event.clientY;
    const originX = this.x;
    const originY = this.y;
    this.stage.setPointerCapture(event.pointerId);
    this.stage.classList.add('dragging');
    const move = (e) => {
      this.x = originX + e.clientX - startX;
      this.y = originY + e.clientY - startY;
      this.fitted = false;
      this.apply();
    };
    const up = () => {
      this.stage.classList.remove('dragging');
      this.stage.removeEventListener('pointermove', move);
      this.stage.removeEventListener('pointerup', up);
      this.stage.removeEventListener('pointercancel', up);
    };
    this.stage.addEventListener('pointermove', move);
    this.stage.addEventListener('pointerup', up);
    this.stage.addEventListener('pointercancel', up);
  }

  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const step = event.shiftKey ? 120 : 40;
    const actions = {
      '+': () => this.zoomBy(1.5),
      '=': () => this.zoomBy(1.5),
      '-': () => this.zoomBy(1 / 1.5),
      0: () => this.fit(),
      1: () => this.actualSize(),
      ArrowLeft: () => this.pan(step, 0),
      ArrowRight: () => this.pan(-step, 0),
      ArrowUp: () => this.pan(0, step),
      ArrowDown: () => this.pan(0, -step),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      event.stopPropagation();
      action();
    }
  }
}
