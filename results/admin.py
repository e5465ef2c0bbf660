from django.contrib import admin

from results.models import AdResult, ResultImport, ResultMapping

admin.site.register(ResultMapping)
admin.site.register(ResultImport)
admin.site.register(AdResult)
