# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: frontend_build_check
short_description: Check a static frontend build before it is published
version_added: 0.1.0
description:
  - Checks a static site build (for example Vite's C(dist/)) on the machine that will publish it, before anything
    remote is touched.
  - Fails when the directory does not exist, has no files, has no C(index.html) at its top, holds the reserved
    C(.publish/) directory, or when C(index.html) references a file the build does not contain. The message names
    every missing file.
  - The references are what a browser fetches while it loads the page. C(<script src>); C(<link href>) for the
    C(rel) values C(stylesheet), C(icon), C(apple-touch-icon), C(apple-touch-icon-precomposed), C(mask-icon),
    C(modulepreload), C(preload), C(prefetch) and C(manifest); C(src) and C(srcset) of C(<img>) and C(<source>);
    C(src) of C(<video>), C(<audio>), C(<track>), C(<input>) and C(<embed>); and C(<video poster>).
    C(<a href>) and C(<iframe src>) name routes, not files, and are not checked.
  - URLs are resolved as a browser resolves them against the page and its C(<base href>), so
    V(/assets/index-AbCd1234.js), V(./assets/index-AbCd1234.js) and V(assets/index-AbCd1234.js) name the same file.
    Query strings and fragments are ignored and percent-encoding is decoded. URLs of another origin
    (V(https://...), V(//cdn.example/...)) and V(data:) or V(blob:) URIs are not part of the build and are skipped.
  - Returns, for C(index.html) and each referenced file, the Cache-Control and Content-Type that
    M(flora.deploy.s3_publish) gives it with the same O(cache_rules) and O(content_types), so a smoke test can check
    what the site serves.
author:
  - Flora platform team (@flora-marketplace)
options:
  src:
    description:
      - The build directory. It must contain C(index.html).
    type: path
    required: true
  base:
    description:
      - The URL path the build is served under, Vite's C(base) option. A same-origin reference outside it fails the
        check, since this build cannot serve it.
      - Leading and trailing V(/) are added, so V(app) and V(/app/) are the same.
    type: str
    default: /
  cache_rules:
    description:
      - The O(flora.deploy.s3_publish#module:cache_rules) the build will be published with; they only shape
        RV(index.cache_control) and RV(referenced[].cache_control).
    type: list
    elements: dict
    suboptions:
      glob:
        description:
          - A C(fnmatch) pattern. Exactly one of O(cache_rules[].glob) and O(cache_rules[].regex) is required.
        type: str
      regex:
        description:
          - A Python regular expression, found anywhere in the path (C(re.search)).
        type: str
      cache_control:
        description:
          - The Cache-Control header for matching files.
        type: str
        required: true
  content_types:
    description:
      - The O(flora.deploy.s3_publish#module:content_types) the build will be published with; they only shape
        RV(index.content_type) and RV(referenced[].content_type).
    type: dict
notes:
  - Only the markup of C(index.html) is read. Files that scripts or stylesheets load later (fonts, images, lazy
    chunks) are not followed; Vite names those with content hashes, and they are published with the rest of the
    build.
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs in check mode as it does otherwise.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: flora.deploy.s3_publish
"""

EXAMPLES = r"""
- name: Check the build before touching the bucket
  flora.deploy.frontend_build_check:
    src: /srv/flora/apps/frontend/dist
  register: frontend__build

- name: Request every file index.html references
  ansible.builtin.uri:
    url: "https://dzmu16crq41il.cloudfront.net/{{ item.path | urlencode }}"
  loop: "{{ frontend__build.referenced }}"
  loop_control:
    label: "{{ item.path }}"

- name: A build served under /shop/, published with a cache rule for fonts
  flora.deploy.frontend_build_check:
    src: "{{ playbook_dir }}/dist"
    base: /shop/
    cache_rules:
      - glob: "fonts/*"
        cache_control: public,max-age=86400
"""

RETURN = r"""
src:
  description: The build directory.
  returned: always
  type: str
  sample: /srv/flora/apps/frontend/dist
files:
  description: How many files the build has, as M(flora.deploy.s3_publish) counts them.
  returned: success
  type: int
  sample: 5
index:
  description: C(index.html) itself.
  returned: success
  type: dict
  contains:
    path:
      description: Its path relative to O(src), always V(index.html).
      type: str
      sample: index.html
    sha256:
      description: The SHA-256 of its content.
      type: str
      sample: 0b0a8b1f2e...
    size:
      description: Its size in bytes.
      type: int
      sample: 1320
    cache_control:
      description: The Cache-Control it is published with.
      type: str
      sample: public,max-age=60
    content_type:
      description: The Content-Type it is published with.
      type: str
      sample: text/html; charset=utf-8
referenced:
  description: The files C(index.html) references, sorted by path, each once.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The path relative to O(src), not URL-encoded.
      type: str
      sample: assets/index-BH4osBhN.js
    url:
      description: The reference as C(index.html) writes it (the first one, when several name the same file).
      type: str
      sample: /assets/index-BH4osBhN.js
    cache_control:
      description: The Cache-Control it is published with.
      type: str
      sample: public,max-age=31536000,immutable
    content_type:
      description: The Content-Type it is published with.
      type: str
      sample: text/javascript; charset=utf-8
    sha256:
      description: The SHA-256 of its content.
      type: str
      sample: 9f86d081884c...
    size:
      description: Its size in bytes.
      type: int
      sample: 183204
  sample:
    - path: assets/index-BH4osBhN.js
      url: /assets/index-BH4osBhN.js
      cache_control: public,max-age=31536000,immutable
      content_type: text/javascript; charset=utf-8
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      size: 183204
    - path: flora-logo.png
      url: /flora-logo.png
      cache_control: public,max-age=0,must-revalidate
      content_type: image/png
      sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
      size: 5120
missing:
  description: The referenced paths the build does not have.
  returned: failure, when C(index.html) references files the build does not have
  type: list
  elements: str
  sample: [assets/index-BH4osBhN.js]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.frontend_build import (
    BuildCheckError,
    check_frontend_build,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    BUILD_FILE_RULES_ARGUMENT_SPEC,
    PublishError,
    compile_cache_rules,
    normalise_content_type_overrides,
)


def main() -> None:
    argument_spec = {
        "src": {"type": "path", "required": True},
        "base": {"type": "str", "default": "/"},
        **BUILD_FILE_RULES_ARGUMENT_SPEC,
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    src = module.params["src"]
    try:
        report = check_frontend_build(
            src,
            base=module.params["base"],
            cache_rules=compile_cache_rules(module.params["cache_rules"]),
            content_types=normalise_content_type_overrides(module.params["content_types"]),
        )
    except BuildCheckError as e:
        details = {"missing": e.missing} if e.missing else {}
        module.fail_json(msg=str(e), src=src, **details)
    except PublishError as e:
        module.fail_json(msg=str(e), src=src)
    module.exit_json(changed=False, **report.to_result())


if __name__ == "__main__":
    main()
