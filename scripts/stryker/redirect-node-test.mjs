// Module loader hook for mutation testing: `import … from 'node:test'` in the unit tests gets the collecting shim.
const shim = new URL('./node-test-shim.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if ((specifier === 'node:test' || specifier === 'test') && context.parentURL !== shim) {
    if (specifier === 'node:test' || context.parentURL?.includes('/test/')) return { url: shim, shortCircuit: true };
  }
  return next(specifier, context);
}
