"""The fixture app grown to the weight of the real Flora app, for the redeploy benchmark.

The fixture app honours Flora's contract but is tiny: its whole workspace installs five packages and its
backend compiles one file, so any command sequence around it is cheap. The real app's redeploy spends its
time in the same steps on far more: a workspace with a React/Vite frontend and an Express backend using
Stripe, Auth0, nodemailer, Gemini and Prisma, and a TypeScript build of the whole backend. This grows the
fixture to that shape: the real app's dependency set (resolved from the npm registry into the lockfile) and
a generated backend of FEATURES TypeScript modules in the style of its routes (an Express router, a zod schema,
Stripe and nodemailer calls). Runtime behaviour is the fixture's: the added modules are compiled, not loaded.

The real app's Prisma CLI comes from npm, so @prisma/client's peer dependency on it resolves inside pnpm's store.
The fixture's stand-in for that CLI is a workspace package; named "prisma", it would satisfy the peer from outside
the store, which no real install does. Grown, it is "@flora/prisma-cli", with the same "prisma" command.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

FEATURES = 80

BACKEND_DEPENDENCIES = {
    "@google/generative-ai": "^0.24.0",
    "@prisma/client": "^6.0.0",
    "axios": "^1.7.0",
    "compression": "^1.7.4",
    "cookie-parser": "^1.4.6",
    "cors": "^2.8.5",
    "express-oauth2-jwt-bearer": "^1.6.0",
    "express-rate-limit": "^7.4.0",
    "helmet": "^8.0.0",
    "jsonwebtoken": "^9.0.2",
    "morgan": "^1.10.0",
    "multer": "^2.0.0",
    "nodemailer": "^6.9.0",
    "stripe": "^17.0.0",
    "uuid": "^10.0.0",
    "zod": "^3.23.0",
}
BACKEND_DEV_DEPENDENCIES = {
    "@types/compression": "^1.7.5",
    "@types/cookie-parser": "^1.4.7",
    "@types/cors": "^2.8.17",
    "@types/express": "^4.17.21",
    "@types/jsonwebtoken": "^9.0.6",
    "@types/morgan": "^1.9.9",
    "@types/multer": "^1.4.12",
    "@types/nodemailer": "^6.4.15",
    # Not "prisma": the fixture's stand-in for its CLI (tools/prisma) applies the migrations, as Prisma's engines
    # download from a host the test machines cannot reach.
    "tsx": "^4.19.0",
}
FRONTEND_DEPENDENCIES = {
    "@auth0/auth0-react": "^2.2.4",
    "@stripe/react-stripe-js": "^2.8.0",
    "@stripe/stripe-js": "^4.5.0",
    "axios": "^1.7.0",
    "react-router-dom": "^6.26.0",
}
FRONTEND_DEV_DEPENDENCIES = {
    "@eslint/js": "^9.9.0",
    "@types/react": "^18.3.0",
    "@types/react-dom": "^18.3.0",
    "@vitejs/plugin-react": "^4.3.1",
    "autoprefixer": "^10.4.20",
    "eslint": "^9.9.0",
    "eslint-plugin-react-hooks": "^5.1.0",
    "globals": "^15.9.0",
    "postcss": "^8.4.41",
    "tailwindcss": "^3.4.10",
    "typescript": "5.8.3",
    "typescript-eslint": "^8.0.0",
}

FEATURE_MODULE = """\
import {{ Router, Request, Response }} from "express";
import {{ z }} from "zod";
import Stripe from "stripe";
import nodemailer from "nodemailer";

export const {name}Schema = z.object({{
  id: z.string().uuid(),
  quantity: z.number().int().positive(),
  bouquet: z.enum(["roses", "tulips", "lilies", "mixed"]),
  deliverOn: z.string().datetime(),
  note: z.string().max(500).optional(),
  recipient: z.object({{ name: z.string(), email: z.string().email(), address: z.string().min(5) }}),
}});
export type {type}Input = z.infer<typeof {name}Schema>;

export interface {type}Result {{
  id: string;
  status: Stripe.PaymentIntent.Status;
  amount: number;
  recipient: {type}Input["recipient"];
}}

export async function {name}Charge(stripe: Stripe, input: {type}Input): Promise<{type}Result> {{
  const intent: Stripe.PaymentIntent = await stripe.paymentIntents.create({{
    amount: input.quantity * {price},
    currency: "aud",
    metadata: {{ feature: "{name}", bouquet: input.bouquet }},
  }});
  return {{ id: intent.id, status: intent.status, amount: intent.amount, recipient: input.recipient }};
}}

export function {name}Router(stripe: Stripe, mailer: nodemailer.Transporter): Router {{
  const router = Router();
  router.post("/api/{path}", async (req: Request, res: Response) => {{
    const parsed = {name}Schema.safeParse(req.body);
    if (!parsed.success) {{
      res.status(400).json(parsed.error.flatten());
      return;
    }}
    const result = await {name}Charge(stripe, parsed.data);
    await mailer.sendMail({{
      to: result.recipient.email,
      subject: `Your {path} order ${{result.id}}`,
      text: `Hello ${{result.recipient.name}}, your order is ${{result.status}}.`,
    }});
    res.json(result);
  }});
  router.get("/api/{path}/:id", async (req: Request, res: Response) => {{
    const intent = await stripe.paymentIntents.retrieve(req.params.id);
    res.json({{ id: intent.id, status: intent.status }});
  }});
  return router;
}}
"""


def _extend(package_json: Path, dependencies: dict, dev_dependencies: dict) -> None:
    package = json.loads(package_json.read_text())
    package.setdefault("dependencies", {}).update(dependencies)
    package.setdefault("devDependencies", {}).update(dev_dependencies)
    package_json.write_text(json.dumps(package, indent=2) + "\n")


def grow(work: Path) -> None:
    """Turn the fixture app's working tree at ``work`` into a Flora-sized one, lockfile included."""
    _extend(work / "apps/backend/package.json", BACKEND_DEPENDENCIES, BACKEND_DEV_DEPENDENCIES)
    _extend(work / "apps/frontend/package.json", FRONTEND_DEPENDENCIES, FRONTEND_DEV_DEPENDENCIES)
    stand_in = work / "tools/prisma/package.json"
    stand_in.write_text(json.dumps({**json.loads(stand_in.read_text()), "name": "@flora/prisma-cli"}, indent=2) + "\n")
    backend = json.loads((work / "apps/backend/package.json").read_text())
    backend["devDependencies"].pop("prisma")
    backend["devDependencies"]["@flora/prisma-cli"] = "workspace:*"
    (work / "apps/backend/package.json").write_text(json.dumps(backend, indent=2) + "\n")
    features = work / "apps/backend/src/features"
    features.mkdir()
    for number in range(FEATURES):
        name = f"feature{number}"
        module = FEATURE_MODULE.format(name=name, type=f"Feature{number}", path=f"feature-{number}", price=100 + number)
        (features / f"{name}.ts").write_text(module)
    subprocess.run(
        ["pnpm", "install", "--lockfile-only", "--silent"],
        cwd=work,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CI": "true", "HOME": str(work.parent)},
        check=True,
    )


def describe() -> str:
    return (
        f"{len(BACKEND_DEPENDENCIES) + len(BACKEND_DEV_DEPENDENCIES)} more backend and "
        f"{len(FRONTEND_DEPENDENCIES) + len(FRONTEND_DEV_DEPENDENCIES)} more frontend dependencies, "
        f"{FEATURES} more backend TypeScript modules"
    )
