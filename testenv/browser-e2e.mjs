// End-to-end in a real browser: Debian's Chromium driven by npm playwright-core.
// Signs in through the gateway and the OpenID provider's login form, reads what the upstream
// received, then opens a route the user may not use and captures the denial page.
//
// Environment: GATEWAY (base URL), LOGIN (user name at the provider), ALLOWED (path),
// DENIED (path), SHOTS (directory for the screenshots). Prints one JSON line with what it saw.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const need = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const gateway = need('GATEWAY');
const shots = need('SHOTS');
fs.mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run',
  ],
});
const out = {};
try {
  const page = await (await browser.newContext()).newPage();
  // 1. A protected page: the gateway sends the browser to the provider's login form.
  await page.goto(`${gateway}${need('ALLOWED')}`);
  out.login_url = page.url();
  await page.fill('input[name=login]', need('LOGIN'));
  await page.fill('input[name=password]', 'any');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(gateway) && !u.pathname.startsWith('/_authgate/')),
    page.click('button[type=submit]'),
  ]);
  out.signed_in_url = page.url();
  out.signed_in_title = await page.title();
  out.upstream_user = await page.locator('tr.id', { hasText: 'x-auth-user' }).locator('td').textContent();
  out.upstream_groups = await page.locator('tr.id', { hasText: 'x-auth-groups' }).locator('td').textContent();
  await page.screenshot({ path: path.join(shots, 'signed-in.png'), fullPage: true });
  // 2. A route the user lacks the group for: the denial page.
  const denied = await page.goto(`${gateway}${need('DENIED')}`);
  out.denied_status = denied.status();
  out.denied_heading = await page.locator('h1').textContent();
  out.denied_text = await page.locator('main').innerText();
  out.denied_sign_out_link = await page.locator('a.btn').getAttribute('href');
  await page.screenshot({ path: path.join(shots, 'denied.png'), fullPage: true });
  // The same page on a phone-sized screen (it must stay readable).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(shots, 'denied-narrow.png'), fullPage: true });
  out.denied_overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
