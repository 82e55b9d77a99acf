// The payment page: Stripe.js's own card fields, and the payment the system opened confirmed
// with them in the browser. The card goes to Stripe only; the site learns of the payment from
// Stripe's signed webhook, and the order's page says so once it has.
(function () {
  'use strict';
  const form = document.getElementById('pay-form');
  const button = document.getElementById('pay');
  const error = document.getElementById('pay-error');
  if (!form) {
    return;
  }
  let stripe;
  let card;
  try {
    // Stripe's own messages (a declined card) in the page's language.
    stripe = Stripe(form.dataset.key, { locale: form.dataset.locale });
    card = stripe.elements().create('card');
    card.mount('#card');
  } catch (e) {
    // Stripe.js blocked or not loaded: said, the button left disabled.
    error.textContent = form.dataset.noFields;
    return;
  }
  // Already confirmed (sent twice, or from another tab): the payment is on its way.
  const confirmed = ['requires_capture', 'processing', 'succeeded'];
  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    error.textContent = '';
    let result;
    try {
      result = await stripe.confirmCardPayment(form.dataset.secret, {
        payment_method: { card: card },
      });
    } catch (e) {
      result = { error: {} };
    }
    const intent = result.paymentIntent || (result.error && result.error.payment_intent);
    if (!result.error || (intent && confirmed.includes(intent.status))) {
      window.location.assign(form.dataset.done);
      return;
    }
    error.textContent = result.error.message || form.dataset.refused;
    form.removeAttribute('aria-busy');
    button.disabled = false;
  });
  button.disabled = false;
})();
