/** Ironic's `links`: a `self` link under `/v1` and a `bookmark` link without it. */
export interface Link {
  readonly href: string;
  readonly rel: string;
  readonly type?: string;
}

export function resourceLinks(baseUrl: string, resource: string, id = ''): Link[] {
  const suffix = id === '' ? `${resource}/` : `${resource}/${id}`;
  return [
    { href: `${baseUrl}/v1/${suffix}`, rel: 'self' },
    { href: `${baseUrl}/${suffix}`, rel: 'bookmark' },
  ];
}
