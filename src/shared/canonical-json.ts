import canonicalize from 'canonicalize'

// The package is CommonJS with an ESM-style `export default` in its types, so under
// NodeNext the default import is the function at run time but typed as the module.
const serialize = canonicalize as unknown as (input: unknown) => string | undefined

/** RFC 8785 canonical JSON: the bytes that signatures and content hashes are computed over. */
export function canonicalJson(value: unknown): string {
  const text = serialize(value)
  if (text == null) throw new TypeError('value cannot be serialized as JSON')
  return text
}
