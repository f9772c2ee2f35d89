"""The console's words in each operator language (FR/EN, as the code e-mails)."""

from __future__ import annotations

LANGS = ("en", "fr")
LOCALES = {"en": "en_GB", "fr": "fr_FR"}  # money and numbers, as in the code e-mails

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Gift cards console", "sign_in": "Sign in", "sign_out": "Sign out",
        "key": "Your operator key", "language": "Language",
        "signed_in_as": "Signed in as", "role": "role",
        "find_card": "Find a card", "order_id": "Order id", "last4": "Last 4 of the code",
        "find": "Find", "card": "Card", "status": "Status", "market": "Market",
        "amount": "Amount", "balance": "Balance", "purchased_at": "Purchased",
        "expires_at": "Expires", "code_ending": "Code ending", "timeline": "Timeline",
        "event": "Event", "when": "When", "deliveries": "Deliveries", "delivery": "Code e-mail",
        "resend": "Resend to the address on file", "resent": "Sent again to the address on file",
        "cancel": "Cancel the card (R19/R20)", "code_typed": "Code (typed by you)",
        "cancelled": "Cancelled: refunded to the original payment",
        "requests": "Rights requests", "request": "Request", "kind": "Kind",
        "subject": "Subject", "received": "Received", "due": "Due", "overdue": "overdue",
        "due_soon": "due soon", "erase": "Carry out the erasure", "erased": "Erased",
        "audit": "Audit", "history": "Verified history", "verify": "Verify",
        "version": "Version", "chain_link": "Chain link", "checkpoint": "Checkpoint",
        "verified_ok": "Verified: the chain and the balance view agree",
        "verified_bad": "Verification failed", "liability": "Liability",
        "breakage": "Breakage", "as_of": "As of", "from": "From", "to": "To",
        "show": "Show", "open_cards": "Open cards", "after_use": "After use",
        "expired": "Expired", "month": "Month", "total": "Total",
        "forbidden": "Your role does not open this page.",
        "expired_session": "Your session ended: sign in again.",
        "csrf": "This form is out of date: reload the page and try again.",
        "reason": "Reason", "resends": "Sent again",
        "chart_table": "the same figures are in the table below",
        "alerts": "Fraud alerts", "rule": "Rule", "severity": "Severity",
        "explanation": "Explanation", "extend": "Extend", "extension": "Extension",
        "months": "Months", "export": "Export (JSON)",
        "evidence": "Evidence pack (a market's month)", "download": "Download",
        "restrict": "Restrict processing", "rectify": "Rectify", "field": "Field",
        "email": "E-mail", "name": "Name", "corrected": "Corrected value",
        "refund": "Refund returned goods (R16-R18)", "paid_order": "Order paid by card",
        "returned_amount": "Amount returned", "customer_id": "Customer id",
        "customer_email": "Customer's e-mail (for the new card)", "refunded": "Refunded",
        "new_card": "New card", "to_other": "To the other payment method",
        "refused": "Refused", "none": "none", "not_covered": "not yet covered",
    },
    "fr": {
        "title": "Console cartes cadeaux", "sign_in": "Se connecter",
        "sign_out": "Se déconnecter", "key": "Votre clé d'opérateur", "language": "Langue",
        "signed_in_as": "Connecté en tant que", "role": "rôle",
        "find_card": "Retrouver une carte", "order_id": "Numéro de commande",
        "last4": "4 derniers caractères du code", "find": "Rechercher", "card": "Carte",
        "status": "État", "market": "Marché", "amount": "Montant", "balance": "Solde",
        "purchased_at": "Achetée le", "expires_at": "Expire le",
        "code_ending": "Code se terminant par", "timeline": "Chronologie",
        "event": "Événement", "when": "Quand", "deliveries": "Envois",
        "delivery": "E-mail du code", "resend": "Renvoyer à l'adresse enregistrée",
        "resent": "Renvoyé à l'adresse enregistrée",
        "cancel": "Annuler la carte (R19/R20)", "code_typed": "Code (saisi par vous)",
        "cancelled": "Annulée : remboursée sur le moyen de paiement d'origine",
        "requests": "Demandes d'exercice des droits", "request": "Demande", "kind": "Type",
        "subject": "Personne", "received": "Reçue le", "due": "Échéance",
        "overdue": "en retard", "due_soon": "échéance proche",
        "erase": "Procéder à l'effacement", "erased": "Effacé", "audit": "Audit",
        "history": "Historique vérifié", "verify": "Vérifier", "version": "Version",
        "chain_link": "Maillon de la chaîne", "checkpoint": "Point de contrôle",
        "verified_ok": "Vérifié : la chaîne et la vue des soldes concordent",
        "verified_bad": "Échec de la vérification", "liability": "Encours",
        "breakage": "Produits non utilisés", "as_of": "Au", "from": "Du", "to": "Au",
        "show": "Afficher", "open_cards": "Cartes ouvertes", "after_use": "Après usage",
        "expired": "Expirées", "month": "Mois", "total": "Total",
        "forbidden": "Votre rôle n'ouvre pas cette page.",
        "expired_session": "Votre session a expiré : reconnectez-vous.",
        "csrf": "Ce formulaire n'est plus valide : rechargez la page et recommencez.",
        "reason": "Motif", "resends": "Renvois",
        "chart_table": "les mêmes chiffres figurent dans le tableau ci-dessous",
        "alerts": "Alertes de fraude", "rule": "Règle", "severity": "Gravité",
        "explanation": "Explication", "extend": "Prolonger", "extension": "Prolongation",
        "months": "Mois", "export": "Exporter (JSON)",
        "evidence": "Dossier de preuves (un mois d'un marché)", "download": "Télécharger",
        "restrict": "Limiter le traitement", "rectify": "Rectifier", "field": "Champ",
        "email": "E-mail", "name": "Nom", "corrected": "Valeur corrigée",
        "refund": "Rembourser des articles retournés (R16-R18)",
        "paid_order": "Commande payée par carte", "returned_amount": "Montant retourné",
        "customer_id": "Identifiant client",
        "customer_email": "E-mail du client (pour la nouvelle carte)",
        "refunded": "Remboursé", "new_card": "Nouvelle carte",
        "to_other": "Sur l'autre moyen de paiement",
        "refused": "Refusé", "none": "aucun", "not_covered": "pas encore couvert",
    },
}


def language(requested: str | None, accept_language: str | None) -> str:
    """The language asked for, else the browser's first supported one, else English."""
    if requested in LANGS:
        return str(requested)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return "en"
