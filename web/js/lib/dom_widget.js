// A fixed-height DOM widget that is never saved: not in the workflow's widgets_values, not in
// the prompt. It must come after the node's own widgets (the frontend saves widget values by
// position), so it is added when the node is created.
export function addFixedWidget(node, name, element, height) {
  const widget = node.addDOMWidget(name, name, element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => height,
    getMaxHeight: () => height,
    getHeight: () => height,
  });
  widget.serialize = false;
  return widget;
}

export function el(tag, style = {}, text = "") {
  const node = document.createElement(tag);
  Object.assign(node.style, style);
  if (text) node.textContent = text;
  return node;
}
