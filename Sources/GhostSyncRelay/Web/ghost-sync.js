// placeholder: replaced by the web branch
