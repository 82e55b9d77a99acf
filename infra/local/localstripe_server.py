"""The local stack's Stripe: localstripe, made to keep the promises of Stripe's API that the
system relies on, and started on the port the local stack gives it.

localstripe (a stateful Stripe emulator, pinned in bootstrap.sh) is patched here, as
moto_server.py patches moto:

- A manual-capture PaymentIntent that is authorized is `requires_capture` with its
  `amount_capturable`, and Stripe announces it as `payment_intent.amount_capturable_updated`
  (localstripe announced nothing until the capture). Its capture announces
  `payment_intent.succeeded` with `amount_received`, a capture of part of it releasing the rest
  (localstripe refunded the rest, announcing a refund nobody asked for); its cancellation
  `payment_intent.canceled`; a refund `refund.created` with its metadata.
- A request sent again with the same `Idempotency-Key` answers the first answer again (a
  refusal too) and does nothing twice; the same key with other parameters is a 400
  `idempotency_error`, and while the first is still being answered a 409, as Stripe's API does
  (localstripe ignored the header).
- Multicapture: a PaymentIntent opened with
  `payment_method_options[card][request_multicapture]=if_available` shows it, and its charge
  says `payment_method_details.card.multicapture.status: available` (every card here allows
  it); a capture with `final_capture=false` takes its amount and keeps the rest held
  (`requires_capture`, announced as `payment_intent.amount_capturable_updated`), and the
  capture that takes the last of it, or a final one, makes the intent `succeeded`, releasing
  what is left. `final_capture=false` on an intent without multicapture is a 400, as Stripe's.
- Events are listed by several types at once (`types[]`), as Stripe lists them.
- Its state stays in memory: two stacks on one machine (the test stack and the fault run's)
  never share a file.
- Its Stripe.js (`/js.stripe.com/v3/`, a card form of plain inputs) confirms a PaymentIntent
  with the card typed into it, as Stripe.js's `confirmCardPayment(clientSecret, {payment_method:
  {card}})` does: the browser posts the card with the publishable key and the intent's client
  secret to `/v1/payment_intents/{id}/confirm` (localstripe's only asked for a 3-D Secure answer
  on an intent confirmed by the server). A card that needs 3-D Secure still shows its dialog;
  after a declined card, another may be tried on the same intent, as on Stripe.
"""

import argparse
import hashlib
import logging
import os
import re
import socket
import sys
from importlib.metadata import version

from aiohttp import web

PINNED = "1.15.10"

# Before anything is patched: the patches below are written against this version's internals.
if version("localstripe") != PINNED:
    sys.exit(f"localstripe {version('localstripe')} is installed; these patches are for {PINNED}: run infra/local/bootstrap.sh")

# The resources first: the server registers their routes as it is imported, so the patches
# below must be in place before it is (see the end of the patches).
import localstripe.resources as resources
from localstripe.resources import Event, PaymentIntent, PaymentMethod, Refund, store
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook


# --- State in memory only -------------------------------------------------------------------
store.dump_to_disk = lambda *args, **kwargs: None
store.try_load_from_disk = lambda *args, **kwargs: None


# --- PaymentIntent amounts and events -------------------------------------------------------
def _amount_capturable(self):
    if self.status != "requires_capture":
        return 0
    return self.amount - getattr(self.latest_charge, "_taken", 0)


def _amount_received(self):
    charge = self.latest_charge
    if charge is None or charge.status != "succeeded":
        return 0
    if not charge.captured:
        # Parts taken so far under multicapture, the rest still held.
        return getattr(charge, "_taken", 0)
    return charge.amount - getattr(charge, "_released", 0)


PaymentIntent.amount_capturable = property(_amount_capturable)
PaymentIntent.amount_received = property(_amount_received)


def _announce_if_capturable(intent):
    # Stripe announces a manual-capture intent that can now be captured.
    if intent.capture_method == "manual" and intent.status == "requires_capture":
        schedule_webhook(Event("payment_intent.amount_capturable_updated", intent))


_original_confirm = PaymentIntent._api_confirm.__func__


@classmethod
def _api_confirm(cls, id, **kwargs):
    obj = _original_confirm(cls, id, **kwargs)
    _announce_if_capturable(obj)
    return obj


PaymentIntent._api_confirm = _api_confirm

_original_create = PaymentIntent._api_create.__func__


@classmethod
def _api_create(cls, **kwargs):
    obj = _original_create(cls, **kwargs)
    _announce_if_capturable(obj)
    return obj


PaymentIntent._api_create = _api_create


def _capture(self, amount, on_success=None):
    # Stripe captures part of an authorization and releases the rest: no refund of it (which
    # localstripe made, announcing a refund nobody asked for).
    amount = self.amount if amount is None else resources.try_convert_to_int(amount)
    if not (type(amount) is int and 0 <= amount <= self.amount
            and self.captured is False and self.status == "succeeded"):
        raise resources.UserError(400, "Bad request")

    def captured():
        self.captured = True
        self._released = self.amount - amount
        if on_success:
            on_success()

    self._trigger_payment(on_success=captured)


resources.Charge._capture = _capture

# --- Multicapture ------------------------------------------------------------------------
_original_intent_init = PaymentIntent.__init__


def _intent_init(self, *args, payment_method_options=None, **kwargs):
    _original_intent_init(self, *args, payment_method_options=payment_method_options, **kwargs)
    card = (payment_method_options or {}).get("card") or {}
    requested = card.get("request_multicapture", "never")
    if requested not in ("if_available", "never"):
        raise UserError(400, "Invalid request_multicapture")
    self.payment_method_options = {"card": {"request_multicapture": requested}}


PaymentIntent.__init__ = _intent_init

_original_create_charge = PaymentIntent._create_charge


def _create_charge(self, on_failure_now):
    _original_create_charge(self, on_failure_now)
    multicapture = self.payment_method_options["card"]["request_multicapture"] == "if_available"
    self.latest_charge.payment_method_details = {
        "type": "card",
        "card": {"multicapture": {"status": "available" if multicapture else "unavailable"}},
    }


PaymentIntent._create_charge = _create_charge

_original_capture = PaymentIntent._api_capture.__func__


@classmethod
def _api_capture(cls, id, amount_to_capture=None, final_capture=None, **kwargs):
    final = True if final_capture is None else resources.try_convert_to_bool(final_capture)
    obj = cls._api_retrieve(id)
    charge = obj.latest_charge
    taken = getattr(charge, "_taken", 0) if charge is not None else 0
    if final and taken == 0:
        return _original_capture(cls, id, amount_to_capture=amount_to_capture, **kwargs)
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    details = getattr(charge, "payment_method_details", {}) if charge is not None else {}
    if details.get("card", {}).get("multicapture", {}).get("status") != "available":
        raise UserError(400, "This PaymentIntent is not eligible for multicapture: final_capture must be true.")
    amount = obj.amount - taken if amount_to_capture is None else resources.try_convert_to_int(amount_to_capture)
    if obj.status != "requires_capture" or type(amount) is not int or not 0 < amount <= obj.amount - taken:
        raise UserError(400, "Bad request")
    charge._taken = taken + amount
    if final or charge._taken == obj.amount:
        # The last part: the rest released, the intent succeeded.
        charge.captured = True
        charge._released = obj.amount - charge._taken
        obj._on_success()
    else:
        schedule_webhook(Event("payment_intent.amount_capturable_updated", obj))
    return obj


PaymentIntent._api_capture = _api_capture

# --- Events listed by several types ------------------------------------------------------
_original_list_events = Event._api_list_all.__func__


@classmethod
def _list_events(cls, url, types=None, **kwargs):
    # Stripe's `types[]` (up to 20 types at once); localstripe took one `type` only.
    listing = _original_list_events(cls, url, **kwargs)
    if types is not None:
        if type(types) is not list or not all(type(t) is str for t in types) or len(types) > 20:
            raise UserError(400, "Bad request")
        listing._list = [event for event in listing._list if event.type in types]
    return listing


Event._api_list_all = _list_events

_original_cancel = PaymentIntent._api_cancel.__func__


@classmethod
def _api_cancel(cls, id, cancellation_reason=None, **kwargs):
    obj = _original_cancel(cls, id, **kwargs)
    obj.cancellation_reason = cancellation_reason
    schedule_webhook(Event("payment_intent.canceled", obj))
    return obj


PaymentIntent._api_cancel = _api_cancel

_original_refund_init = Refund.__init__


def _refund_init(self, *args, **kwargs):
    _original_refund_init(self, *args, **kwargs)
    if self.payment_intent is None and self.charge is not None:
        self.payment_intent = resources.Charge._api_retrieve(self.charge).payment_intent
    schedule_webhook(Event("refund.created", self))


Refund.__init__ = _refund_init


# The routes of the patched operations call the patched versions.
_patched = {
    "/v1/payment_intents/{id}/confirm": PaymentIntent._api_confirm,
    "/v1/payment_intents/{id}/cancel": PaymentIntent._api_cancel,
    "/v1/payment_intents/{id}/capture": PaymentIntent._api_capture,
}
resources.extra_apis[:] = [
    (method, url, _patched.get(url, func)) for method, url, func in resources.extra_apis
]

import localstripe.server as server  # noqa: E402  (after the patches: it registers the routes)

# --- Idempotency-Key ------------------------------------------------------------------------
_answers = {}
_in_flight = set()


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    # Keys are the account's, whichever of its API keys sent them (the emulator is one account).
    scope = key
    fingerprint = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
    remembered = _answers.get(scope)
    if remembered is not None:
        seen, status, answer = remembered
        if seen != fingerprint:
            return web.json_response(
                {"error": {"type": "idempotency_error",
                           "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}},
                status=400,
            )
        return web.Response(status=status, body=answer, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    if scope in _in_flight:
        return web.json_response(
            {"error": {"type": "idempotency_error",
                       "message": "There is currently another in-progress request using this Idempotent Key."}},
            status=409,
        )
    _in_flight.add(scope)
    try:
        try:
            response = await handler(request)
        except UserError as refusal:
            response = refusal.to_response()
        # Stripe keeps the answer of a request that reached it, success or refusal (not a 5xx).
        if response.status < 500:
            _answers[scope] = (fingerprint, response.status, response.body)
        return response
    finally:
        _in_flight.discard(scope)


server.app.middlewares.append(idempotency_middleware)


# --- Stripe.js confirming with the card typed into its form --------------------------------
_BROWSER_CONFIRM = re.compile(r"^/v1/payment_intents/(pi_\w+)/confirm$")

# Appended to localstripe's Stripe.js: `confirmCardPayment` with a card element confirms the
# intent with that card (then asks the 3-D Secure question only if the card needs it).
_CONFIRM_WITH_CARD = """
(function () {
  const emulated = Stripe;
  Stripe = (apiKey) => {
    const stripe = emulated(apiKey);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const element = data && data.payment_method && data.payment_method.card;
      if (!element || !element.value) {
        return authenticate(clientSecret, data);
      }
      const pi = clientSecret.match(/^(pi_\\w+)_secret_/)[1];
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_intents/${pi}/confirm`, {
        method: 'POST',
        body: JSON.stringify({
          key: apiKey,
          client_secret: clientSecret,
          payment_method_data: {type: 'card', card: element.value.card},
        }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) {
        return {error: body.error || {message: 'The payment was refused.'}};
      }
      if (body.status === 'requires_action') {
        return authenticate(clientSecret, data);
      }
      return {paymentIntent: body};
    };
    return stripe;
  };
})();
"""


def _stripe_js():
    import localstripe
    path = os.path.join(os.path.dirname(os.path.realpath(localstripe.__file__)), "localstripe-v3.js")
    with open(path) as f:
        return f.read() + _CONFIRM_WITH_CARD


@web.middleware
async def browser_confirm_middleware(request, handler):
    if request.method == "GET" and request.path == "/js.stripe.com/v3/":
        return web.Response(text=_stripe_js(), content_type="application/javascript")
    matched = _BROWSER_CONFIRM.match(request.path)
    if request.method != "POST" or matched is None or server.get_api_key(request) is not None:
        return await handler(request)
    # The browser's confirmation: the publishable key and the intent's own client secret.
    data = await server.get_post_data(request, remove_auth=False)
    key, secret = data.get("key"), data.get("client_secret")
    if not (isinstance(key, str) and key.startswith("pk_")):
        return UserError(401, "Unauthorized").to_response()
    try:
        intent = PaymentIntent._api_retrieve(matched[1])
        if not isinstance(secret, str) or secret != intent.client_secret:
            raise UserError(401, "Unauthorized")
        if intent.status not in ("requires_payment_method", "requires_confirmation"):
            # Confirmed already (sent twice, another tab): Stripe's refusal names the intent.
            raise UserError(400, f"This PaymentIntent's status is {intent.status}.", {
                "code": "payment_intent_unexpected_state",
                "payment_intent": intent._export(),
            })
        method = data.get("payment_method_data") or {}
        if method.get("type") != "card" or not isinstance(method.get("card"), dict):
            raise UserError(400, "payment_method_data[card] is required")
        card = PaymentMethod._api_create(type="card", card=method["card"])
        if intent.latest_charge is not None and intent.latest_charge.status == "failed":
            # Declined before: Stripe takes another card on the same intent.
            intent.latest_charge = None
        PaymentIntent._api_update(intent.id, payment_method=card.id)
        confirmed = PaymentIntent._api_confirm(intent.id)
    except UserError as refusal:
        return refusal.to_response()
    return server.json_response(confirmed._export())


# Outermost: before localstripe's own key check, which takes no publishable key here.
server.app.middlewares.insert(0, browser_confirm_middleware)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    logging.basicConfig(level=logging.INFO)
    web.run_app(server.app, sock=sock, access_log=logging.getLogger("aiohttp.access"))


if __name__ == "__main__":
    main()
