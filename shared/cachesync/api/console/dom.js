// Small DOM helpers: every element is built with createElement and textContent, never from
// HTML strings, so no text coming from the API can turn into markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An HTML element. props: class, text, attrs (attributes), on (event listeners), and any
 * other key set as a property (value, type, checked, ...).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

/** An SVG element; attrs are set as attributes (presentation attributes are CSP-safe). */
export function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function applyProps(element, props) {
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "attrs") {
      for (const [attr, v] of Object.entries(value)) {
        if (v !== undefined && v !== null && v !== false) element.setAttribute(attr, v === true ? "" : String(v));
      }
    } else if (name === "on") {
      for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    } else element[name] = value;
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of element with children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}
